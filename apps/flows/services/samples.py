"""Recorded on-chain samples (data/onchain-blocks): real blocks through the real parsers and flow accounting.

Ethereum: the blocks' USDT/USDC Transfer logs go through :func:`apps.flows.erc20.parse_transfer_log` and their
native ETH transactions through the Etherscan item parser, as a poll would take them (the ethereum-etl export is
only put back into the JSON-RPC and Etherscan shapes first). Bitcoin: python-bitcoinlib deserialises the raw
block. A raw block does not carry the outputs its inputs spend, so input addresses and values are unknown: each
transaction is booked as paid by the unlabelled world (its labelled outputs are inflow, nothing is outflow). One
whose inputs may spend a labelled address (the hash of the last item a P2PKH/P2SH/P2WPKH/P2WSH spend pushes) is
left out, because its change could not be told from a deposit.

The rows are stored like polled ones (final, keyed by txid), then the touched hours' bars are refreshed, and a
FlowSample row names the sample for the pages. Loading twice changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bitcoin.core import CBlock, Hash160
from bitcoin.core.script import CScript, CScriptInvalidError
from bitcoin.wallet import (
    CBitcoinAddress,
    CBitcoinAddressError,
    P2PKHBitcoinAddress,
    P2SHBitcoinAddress,
    P2WPKHBitcoinAddress,
    P2WSHBitcoinAddress,
)
from django.conf import settings
from django.db import transaction

from apps.flows import selectors
from apps.flows.erc20 import TRANSFER_TOPIC, parse_transfer_log
from apps.flows.esplora import Tx
from apps.flows.models import Chain, FlowSample
from apps.flows.services.bars import flow_bars_refresh_hours
from apps.flows.services.eth import TOKENS, _native_tx
from apps.flows.services.store import StoreResult, flow_rows_store, flows_changed, unix_to_dt

SAMPLES_DIR = Path(settings.BASE_DIR) / "data" / "onchain-blocks"
SOURCE_NOTE = "data/onchain-blocks/SOURCE.txt"
ETH_PREFIX = "eth-17173049-17173050"
BTC_BLOCK = "btc-block-702861.raw"


@dataclass
class SampleLoadResult:
    key: str
    transactions: int = 0
    left_out: int = 0  # BTC: spent from a possibly labelled address, values unknown
    stored: StoreResult = field(default_factory=StoreResult)
    flow_rows: int = 0
    sample_changed: bool = False


@dataclass
class _Parsed:
    """One recording, parsed: the transactions per asset and what the FlowSample row says."""

    key: str
    chain: str
    description: str
    heights: tuple[int, int]
    times: tuple[int, int]
    per_asset: dict[str, list[tuple[Tx, bool]]]
    transactions: int
    inflows_only: bool = False
    left_out: int = 0


def _jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _rpc_log(log: dict) -> dict:
    """An ethereum-etl log row in the ``eth_getLogs`` shape the live scan reads."""
    return {"address": log["address"], "topics": log["topics"], "data": log["data"],
            "transactionHash": log["transaction_hash"], "logIndex": hex(log["log_index"]),
            "blockNumber": hex(log["block_number"]), "blockHash": log["block_hash"], "removed": False}


def _etherscan_item(tx: dict) -> dict:
    """An ethereum-etl transaction row in the Etherscan ``txlist`` shape the native ETH sync reads."""
    return {"hash": tx["hash"], "from": tx["from_address"], "to": tx["to_address"] or "", "value": str(tx["value"]),
            "gasUsed": str(tx["receipt_gas_used"]), "gasPrice": str(tx["receipt_effective_gas_price"]),
            "blockNumber": str(tx["block_number"]), "timeStamp": str(tx["block_timestamp"]),
            "isError": "0" if tx["receipt_status"] == 1 else "1"}


def eth_sample_parse(*, directory: Path = SAMPLES_DIR, prefix: str = ETH_PREFIX) -> _Parsed:
    blocks = {b["number"]: b for b in _jsonl(directory / f"{prefix}-blocks.jsonl")}
    block_times = {n: b["timestamp"] for n, b in blocks.items()}
    per_asset: dict[str, list[tuple[Tx, bool]]] = {asset: [] for asset in TOKENS.values()}
    transfers = 0
    for log in _jsonl(directory / f"{prefix}-logs.jsonl"):
        if log["address"].lower() not in TOKENS or not log["topics"] or log["topics"][0] != TRANSFER_TOPIC:
            continue
        transfer = parse_transfer_log(_rpc_log(log), block_times=block_times)
        per_asset[TOKENS[transfer.token]].append((transfer.tx, True))
        transfers += 1
    native = [(_native_tx(_etherscan_item(tx)), True) for tx in _jsonl(directory / f"{prefix}-transactions.jsonl")]
    per_asset["ETH"] = native
    first, last = min(blocks), max(blocks)
    return _Parsed(prefix, Chain.ETH, f"{len(blocks)} Ethereum blocks", (first, last),
                   (block_times[first], block_times[last]), per_asset, transfers + len(native))


def _address(script: CScript) -> str | None:
    """The standard address an output pays (bech32 lowercase, Base58 as is), None for OP_RETURN and the like."""
    try:
        return str(CBitcoinAddress.from_scriptPubKey(script))
    except (CBitcoinAddressError, CScriptInvalidError):
        return None


def _spender_addresses(script_sig: CScript, witness: list[bytes]) -> set[str]:
    """Every address an input may spend from: a standard spend pushes the public key (P2PKH, P2WPKH), the
    redeem script (P2SH) or the witness script (P2WSH) last. Over-inclusive on purpose: only compared with labels."""
    found: set[str] = set()
    if witness and witness[-1]:
        last = witness[-1]
        found.add(str(P2WSHBitcoinAddress.from_bytes(0, hashlib.sha256(last).digest())))
        if len(last) == 33:
            found.add(str(P2WPKHBitcoinAddress.from_bytes(0, Hash160(last))))
    try:
        pushes = [op for op in script_sig if isinstance(op, bytes)]
    except CScriptInvalidError:
        pushes = []
    if pushes and pushes[-1]:
        last = pushes[-1]
        found.add(str(P2SHBitcoinAddress.from_bytes(Hash160(last))))
        if len(last) in (33, 65):
            found.add(str(P2PKHBitcoinAddress.from_bytes(Hash160(last))))
    return found


def _bip34_height(coinbase_sig: CScript) -> int:
    """A block's height from its coinbase (BIP-34: the first push, little-endian)."""
    first = next(iter(coinbase_sig))
    return int.from_bytes(first, "little") if isinstance(first, bytes) else int(first)


def btc_sample_parse(*, path: Path = SAMPLES_DIR / BTC_BLOCK, labels: dict[str, str]) -> _Parsed:
    block = CBlock.deserialize(path.read_bytes())
    height = _bip34_height(block.vtx[0].vin[0].scriptSig)
    txs: list[tuple[Tx, bool]] = []
    left_out = 0
    for ctx in block.vtx:
        if not ctx.is_coinbase():
            spenders = set()
            for j, txin in enumerate(ctx.vin):
                stack = list(ctx.wit.vtxinwit[j].scriptWitness.stack) if j < len(ctx.wit.vtxinwit) else []
                spenders |= _spender_addresses(txin.scriptSig, stack)
            if any(a in labels for a in spenders):
                left_out += 1
                continue
        outputs = tuple((_address(out.scriptPubKey), out.nValue) for out in ctx.vout)
        # No inputs: classify_tx books what the transaction pays as coming from the unlabelled world.
        txs.append((Tx(ctx.GetTxid()[::-1].hex(), height, block.nTime, True, (), outputs, 0), True))
    return _Parsed(f"btc-{height}", Chain.BTC, f"Bitcoin block {height}", (height, height),
                   (block.nTime, block.nTime), {"BTC": txs}, len(block.vtx), inflows_only=True, left_out=left_out)


def _sample_save(parsed: _Parsed, *, assets: list[str], flow_rows: int) -> bool:
    values = {
        "chain": parsed.chain, "assets": ",".join(assets), "description": parsed.description,
        "first_height": parsed.heights[0], "last_height": parsed.heights[1], "start": unix_to_dt(parsed.times[0]),
        "end": unix_to_dt(parsed.times[1]), "transactions": parsed.transactions, "flow_rows": flow_rows,
        "inflows_only": parsed.inflows_only, "source": SOURCE_NOTE,
    }
    sample = FlowSample.objects.filter(key=parsed.key).first()
    if sample is not None and all(getattr(sample, k) == v for k, v in values.items()):
        return False
    FlowSample.objects.update_or_create(key=parsed.key, defaults=values)
    flows_changed()
    return True


def _sample_store(parsed: _Parsed) -> SampleLoadResult:
    result = SampleLoadResult(parsed.key, transactions=parsed.transactions, left_out=parsed.left_out)
    labels = selectors.wallet_labels(chain=parsed.chain)
    touched: dict[str, set] = {}
    with transaction.atomic():
        assets = []
        for asset, txs in parsed.per_asset.items():
            stored = flow_rows_store(chain=parsed.chain, asset=asset, txs=txs, labels=labels)
            result.stored.add(stored)
            touched[asset] = stored.touched
            rows = stored.inserted + stored.updated + stored.unchanged
            result.flow_rows += rows
            if rows:
                assets.append(asset)
        result.sample_changed = _sample_save(parsed, assets=assets, flow_rows=result.flow_rows)
    for asset, hours in touched.items():
        if hours:
            flow_bars_refresh_hours(chain=parsed.chain, asset=asset, hours=hours, publish=False)
    return result


def flow_samples_load(*, directory: Path = SAMPLES_DIR) -> list[SampleLoadResult]:
    """Store the exchange flows of the recorded Ethereum and Bitcoin blocks against the current labels."""
    btc_labels = selectors.wallet_labels(chain=Chain.BTC)
    return [
        _sample_store(eth_sample_parse(directory=directory)),
        _sample_store(btc_sample_parse(path=directory / BTC_BLOCK, labels=btc_labels)),
    ]
