"""Paths and builders shared by the flow tests (Esplora-shaped transactions, label files)."""

from __future__ import annotations

import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT.parent / "shared" / "data"
LABELS_DIR = ROOT / "data" / "wallet-labels"
LABEL_SOURCES = SHARED / "exchange-address-labels"
ESPLORA_SAMPLES = SHARED / "esplora-tx-format-samples"


def read_labels(chain: str) -> list[dict]:
    with open(LABELS_DIR / f"{chain}_exchange_wallets.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def esplora_tx(txid: str, vin: list[tuple[str | None, int]], vout: list[tuple[str | None, int]], *,
               height: int | None = 850_000, block_time: int | None = 1_719_000_000, fee: int | None = None) -> dict:
    """A transaction in exactly the shape of Esplora's GET /api/tx/:txid (the fields we read, and a few more)."""
    def script(address):
        if address is None:
            return {"scriptpubkey": "6a", "scriptpubkey_asm": "OP_RETURN", "scriptpubkey_type": "op_return"}
        return {"scriptpubkey": "", "scriptpubkey_asm": "", "scriptpubkey_type": "v0_p2wpkh",
                "scriptpubkey_address": address}

    status = ({"confirmed": True, "block_height": height, "block_hash": "00" * 32, "block_time": block_time}
              if height is not None else {"confirmed": False})
    total_in = sum(v for _, v in vin)
    total_out = sum(v for _, v in vout)
    return {
        "txid": txid,
        "version": 2,
        "locktime": 0,
        "vin": [{"txid": f"{i:064x}", "vout": i, "prevout": {**script(a), "value": v}, "scriptsig": "",
                 "scriptsig_asm": "", "witness": [], "is_coinbase": False, "sequence": 4294967293}
                for i, (a, v) in enumerate(vin)],
        "vout": [{**script(a), "value": v} for a, v in vout],
        "size": 200,
        "weight": 800,
        "fee": total_in - total_out if fee is None else fee,
        "status": status,
    }
