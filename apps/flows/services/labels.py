"""Importing exchange wallet labels from CSV: validated, normalised, idempotent."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.flows.addresses import validate_address
from apps.flows.models import ALL_EXCHANGES, Chain, ExchangeWallet
from apps.flows.services.store import flows_changed

logger = logging.getLogger(__name__)

LABELS_DIR = Path(settings.BASE_DIR) / "data" / "wallet-labels"
DEFAULT_LABEL_FILES = (LABELS_DIR / "btc_exchange_wallets.csv", LABELS_DIR / "eth_exchange_wallets.csv")
_REQUIRED_COLUMNS = ("chain", "address", "exchange")


@dataclass
class LabelImportResult:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[str, int, str, str]] = field(default_factory=list)  # (file, line, address, reason)
    by_chain: dict[str, int] = field(default_factory=dict)


def _label_row(row: dict) -> tuple[dict | None, str]:
    chain = (row.get("chain") or "").strip().lower()
    if chain not in Chain.values:
        return None, f"unknown chain {row.get('chain')!r} (expected btc or eth)"
    address, reason = validate_address(chain, row.get("address") or "")
    if address is None:
        return None, f"invalid {chain} address: {reason}"
    exchange = (row.get("exchange") or "").strip().lower()
    if not exchange or not all(ch.isalnum() or ch == "-" for ch in exchange) or exchange == ALL_EXCHANGES:
        return None, f"bad exchange slug {row.get('exchange')!r}"
    label = (row.get("label") or "unknown").strip().lower()
    if label not in ExchangeWallet.Label.values:
        return None, f"unknown label {label!r} (expected one of {', '.join(ExchangeWallet.Label.values)})"
    return {"chain": chain, "address": address, "exchange": exchange, "label": label,
            "source": (row.get("source") or "").strip()[:255]}, ""


def wallet_labels_import(*, paths: Sequence[Path] = DEFAULT_LABEL_FILES,
                         progress: Callable[[Path, int], None] | None = None) -> LabelImportResult:
    """Upsert exchange wallets from label CSVs (chain,address,exchange,label,source).

    Each address is validated (checksums included) and normalised; bad rows are rejected with a
    reason and nothing else. Re-importing the same files changes nothing. ``active`` and
    ``first_seen`` are never touched, so wallets switched off in the admin stay off.
    """
    result = LabelImportResult()
    for path in paths:
        path = Path(path)
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
            rows: dict[tuple[str, str], dict] = {}
            for row in reader:
                result.read += 1
                clean, reason = _label_row(row)
                if clean is None:
                    result.rejected.append((path.name, reader.line_num, str(row.get("address")), reason))
                    logger.warning("%s line %s: rejected %r: %s", path.name, reader.line_num, row.get("address"),
                                   reason)
                else:
                    rows[clean["chain"], clean["address"]] = clean
                if progress:
                    progress(path, result.read)
        _wallets_upsert(list(rows.values()), result)
    return result


def _wallets_upsert(rows: list[dict], result: LabelImportResult) -> None:
    now = timezone.now()
    with transaction.atomic():
        for chain in {r["chain"] for r in rows}:
            chain_rows = [r for r in rows if r["chain"] == chain]
            existing = {w.address: w for w in ExchangeWallet.objects.filter(
                chain=chain, address__in=[r["address"] for r in chain_rows])}
            create, update = [], []
            for r in chain_rows:
                wallet = existing.get(r["address"])
                if wallet is None:
                    create.append(ExchangeWallet(**r))
                elif (wallet.exchange, wallet.label, wallet.source) != (r["exchange"], r["label"], r["source"]):
                    wallet.exchange, wallet.label, wallet.source, wallet.updated_at = (
                        r["exchange"], r["label"], r["source"], now)
                    update.append(wallet)
                else:
                    result.unchanged += 1
            ExchangeWallet.objects.bulk_create(create, batch_size=500)
            # bulk_update skips auto_now: updated_at is set above so the label caches notice.
            ExchangeWallet.objects.bulk_update(update, ["exchange", "label", "source", "updated_at"], batch_size=500)
            result.created += len(create)
            result.updated += len(update)
            result.by_chain[chain] = result.by_chain.get(chain, 0) + len(chain_rows)
            if create or update:
                flows_changed()  # the page counts the labelled wallets
