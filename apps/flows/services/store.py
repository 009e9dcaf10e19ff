"""Storing classified flows: one FlowTx row per (chain, txid, exchange, counterparty), written only
when its values change, and the page-cache version moved after every change."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction

from apps.flows import selectors
from apps.flows.accounting import classify_tx
from apps.flows.esplora import Tx
from apps.flows.models import FlowTx
from pressureweb.lib.times import ms_to_dt
from pressureweb.payload_cache import version_bump

_IN_CHUNK = 500  # ids per IN (...) query: well under SQLite's variable limit
_VALUE_FIELDS = ("asset", "exchange_to_exchange", "inflow", "outflow", "internal", "fee", "block_height",
                 "block_time", "confirmed")


def unix_to_dt(unix: int | None) -> datetime | None:
    """A block time (Unix seconds) as an aware UTC datetime; None stays None."""
    return None if unix is None else ms_to_dt(unix * 1000)


def flows_version_bump() -> None:
    """Move selectors.flows_version on: every cached flows page payload is rebuilt on its next read."""
    version_bump(selectors.FLOWS_VERSION_KEY)


def flows_changed() -> None:
    # After commit, so no reader caches the previous rows under the new version.
    transaction.on_commit(flows_version_bump)


@dataclass
class StoreResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    new_txids: set[str] = field(default_factory=set)
    touched: set[datetime] = field(default_factory=set)  # hours whose final flows changed

    def add(self, other: StoreResult) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.new_txids |= other.new_txids
        self.touched |= other.touched


def _chunks(items: Sequence, size: int = _IN_CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _hour_of(values: dict) -> datetime | None:
    if values.get("confirmed") and values.get("block_time") is not None:
        return selectors.floor_hour(values["block_time"])
    return None


def _same(old: dict, new: dict) -> bool:
    return all(old[k] == new[k] for k in _VALUE_FIELDS)


def _wanted_rows(*, asset: str, txs: Sequence[tuple[Tx, bool]],
                 labels: dict[str, str]) -> dict[tuple[str, str, str], dict]:
    wanted: dict[tuple[str, str, str], dict] = {}
    for tx, final in txs:
        for r in classify_tx(tx, labels):
            wanted[r.txid, r.exchange, r.counterparty_exchange or ""] = {
                "asset": asset, "exchange_to_exchange": r.exchange_to_exchange, "inflow": r.inflow_sat,
                "outflow": r.outflow_sat, "internal": r.internal_sat, "fee": r.fee_sat,
                "block_height": r.block_height, "block_time": unix_to_dt(r.block_time), "confirmed": final,
            }
    return wanted


def _existing_rows(*, chain: str, txids: Iterable[str]) -> dict[tuple[str, str, str], dict]:
    existing: dict[tuple[str, str, str], dict] = {}
    for chunk in _chunks(sorted(set(txids))):
        for row in FlowTx.objects.filter(chain=chain, txid__in=chunk).values("pk", "txid", "exchange", "counterparty",
                                                                            *_VALUE_FIELDS):
            existing[row["txid"], row["exchange"], row["counterparty"]] = row
    return existing


def flow_rows_store(*, chain: str, asset: str, txs: Sequence[tuple[Tx, bool]], labels: dict[str, str]) -> StoreResult:
    """Classify transactions (tx, final) against ``labels`` and upsert their FlowTx rows.

    Only rows whose values changed are written; rows of these transactions that the current
    labels no longer produce are deleted. Call inside the transaction that also moves the cursor.
    """
    out = StoreResult()
    wanted = _wanted_rows(asset=asset, txs=txs, labels=labels)
    existing = _existing_rows(chain=chain, txids=(tx.txid for tx, _ in txs))
    known_txids = {k[0] for k in existing}
    write = []
    for key, values in wanted.items():
        old = existing.get(key)
        if old is not None and _same(old, values):
            out.unchanged += 1
            continue
        if old is None:
            out.inserted += 1
            if key[0] not in known_txids:
                out.new_txids.add(key[0])
        else:
            out.updated += 1
            if hour := _hour_of(old):
                out.touched.add(hour)
        if hour := _hour_of(values):
            out.touched.add(hour)
        write.append(FlowTx(chain=chain, txid=key[0], exchange=key[1], counterparty=key[2], **values))
    stale = [old for key, old in existing.items() if key not in wanted]
    out.touched.update(hour for old in stale if (hour := _hour_of(old)))
    if stale:
        out.deleted = FlowTx.objects.filter(pk__in=[old["pk"] for old in stale]).delete()[0]
    if write:
        FlowTx.objects.bulk_create(
            write, batch_size=500, update_conflicts=True, unique_fields=["chain", "txid", "exchange", "counterparty"],
            update_fields=[*_VALUE_FIELDS, "updated_at"],
        )
    if write or stale:
        flows_changed()  # pending inflow and the summary read FlowTx directly
    return out


def flow_rows_delete(queryset) -> StoreResult:
    """Delete FlowTx rows (a reorg, a dropped transaction), noting the hours whose bars they were in."""
    out = StoreResult()
    for values in queryset.values("confirmed", "block_time"):
        if hour := _hour_of(values):
            out.touched.add(hour)
    out.deleted = queryset.delete()[0]
    if out.deleted:
        flows_changed()
    return out
