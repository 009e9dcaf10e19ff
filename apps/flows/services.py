"""Writes of exchange flows: label import, Bitcoin address sync, ERC-20 log sync, bars, reserves.

Every step is idempotent: a transaction is stored as one FlowTx row per (exchange, counterparty)
keyed by (chain, txid, exchange, counterparty), rows are only written when their values change, and
cursors advance in the same database transaction as the rows they cover. So a worker killed mid-run,
or the same page fetched twice, leaves the same rows behind.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from apps.flows import selectors
from apps.flows.accounting import classify_tx
from apps.flows.addresses import validate_address
from apps.flows.aggregate import add_usd, flows_by_hour, netflow_zscore
from apps.flows.clients import (
    CHAIN_PAGE_SIZE,
    EsploraClient,
    EtherscanClient,
    EthRpcClient,
    MalformedResponse,
    SourceError,
    SourceRejected,
    SourceUnavailable,
)
from apps.flows.erc20 import TRANSFER_TOPIC, USDC, USDT, parse_transfer_log
from apps.flows.esplora import MalformedTx, Tx, confirmations, parse_tx
from apps.flows.models import (
    ALL_EXCHANGES,
    ASSET_DECIMALS,
    AddressCursor,
    BlockHash,
    Chain,
    ChainCursor,
    ExchangeWallet,
    FlowBar,
    FlowTx,
    ReserveSnapshot,
)
from apps.flows.reorg import DeepReorg, find_fork_point
from apps.flows.signals import flow_bars_changed
from apps.markets.services import source_status_record
from pressureweb.page_payloads import version_bump

logger = logging.getLogger(__name__)

FLOWS_GROUP = "flows"
HOUR = timedelta(hours=1)
LABELS_DIR = Path(settings.BASE_DIR) / "data" / "wallet-labels"
DEFAULT_LABEL_FILES = (LABELS_DIR / "btc_exchange_wallets.csv", LABELS_DIR / "eth_exchange_wallets.csv")
TOKENS = {USDT: "USDT", USDC: "USDC"}
_IN_CHUNK = 500  # ids per IN (...) query: well under SQLite's variable limit
_VALUE_FIELDS = ("asset", "exchange_to_exchange", "inflow", "outflow", "internal", "fee", "block_height",
                 "block_time", "confirmed")


def _setting(name: str, default):
    return getattr(settings, name, default)


def esplora_client() -> EsploraClient:
    return EsploraClient(_setting("ESPLORA_URL", "https://mempool.space/api"),
                         timeout=float(_setting("FLOWS_HTTP_TIMEOUT", 20.0)))


def eth_rpc_client() -> EthRpcClient | None:
    url = _setting("ETH_RPC_URL", "")
    return EthRpcClient(url, timeout=float(_setting("FLOWS_HTTP_TIMEOUT", 20.0))) if url else None


def etherscan_client() -> EtherscanClient | None:
    key = _setting("ETHERSCAN_API_KEY", "")
    if not key:
        return None
    return EtherscanClient(key, _setting("ETHERSCAN_URL", "https://api.etherscan.io/v2/api"),
                           timeout=float(_setting("FLOWS_HTTP_TIMEOUT", 20.0)))


def _to_dt(unix: int | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, tz=UTC)


def _chunks(items: Sequence, size: int = _IN_CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


# --- source health: counters on /status/ and a shared back-off ----------------------------------------


def _backoff_key(source: str) -> str:
    return f"flows:backoff:{source}"


def source_backoff_set(*, source: str, seconds: float | None) -> None:
    """After a 429, every worker leaves the source alone for Retry-After seconds (30 s if it sent none)."""
    seconds = max(1.0, seconds if seconds is not None else 30.0)
    cache.set(_backoff_key(source), time.time() + seconds, timeout=math.ceil(seconds))


def source_backing_off(*, source: str) -> float:
    """Seconds left of a source's back-off, 0 when it may be called."""
    until = cache.get(_backoff_key(source))
    return max(0.0, until - time.time()) if until else 0.0


def _source_record(source: str, *, inserted: int = 0, unchanged: int = 0, malformed: int = 0, errors: int = 0,
                   last_event: datetime | None = None, last_error: str = "") -> None:
    source_status_record(
        name=source, trades_inserted=inserted, duplicates=unchanged, rejected=malformed, errors=errors,
        last_event_ms=None if last_event is None else int(last_event.timestamp() * 1000), last_error=last_error,
    )


# --- the flows page cache ------------------------------------------------------------------------------


def flows_version_bump() -> None:
    """Move selectors.flows_version on: every cached flows page payload is rebuilt on its next read."""
    version_bump(selectors.FLOWS_VERSION_KEY)


def _flows_changed() -> None:
    # After commit, so no reader caches the previous rows under the new version.
    transaction.on_commit(flows_version_bump)


# --- wallet labels -------------------------------------------------------------------------------------


@dataclass
class LabelImportResult:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[str, int, str, str]] = field(default_factory=list)  # (file, line, address, reason)
    by_chain: dict[str, int] = field(default_factory=dict)


_REQUIRED_COLUMNS = ("chain", "address", "exchange")


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
                _flows_changed()  # the page counts the labelled wallets


# --- storing classified flows --------------------------------------------------------------------------


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


def _hour_of(values: dict) -> datetime | None:
    if values.get("confirmed") and values.get("block_time") is not None:
        return selectors.floor_hour(values["block_time"])
    return None


def _same(old: dict, new: dict) -> bool:
    return all(old[k] == new[k] for k in _VALUE_FIELDS)


def flow_rows_store(*, chain: str, asset: str, txs: Sequence[tuple[Tx, bool]], labels: dict[str, str]) -> StoreResult:
    """Classify transactions (tx, final) against ``labels`` and upsert their FlowTx rows.

    Only rows whose values changed are written; rows of these transactions that the current
    labels no longer produce are deleted. Call inside the transaction that also moves the cursor.
    """
    out = StoreResult()
    wanted: dict[tuple[str, str, str], dict] = {}
    txids = []
    for tx, final in txs:
        txids.append(tx.txid)
        for r in classify_tx(tx, labels):
            wanted[r.txid, r.exchange, r.counterparty_exchange or ""] = {
                "asset": asset, "exchange_to_exchange": r.exchange_to_exchange, "inflow": r.inflow_sat,
                "outflow": r.outflow_sat, "internal": r.internal_sat, "fee": r.fee_sat,
                "block_height": r.block_height, "block_time": _to_dt(r.block_time), "confirmed": final,
            }
    existing: dict[tuple[str, str, str], dict] = {}
    for chunk in _chunks(sorted(set(txids))):
        for row in FlowTx.objects.filter(chain=chain, txid__in=chunk).values("pk", "txid", "exchange", "counterparty",
                                                                            *_VALUE_FIELDS):
            existing[row["txid"], row["exchange"], row["counterparty"]] = row
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
    stale = [(key, old) for key, old in existing.items() if key not in wanted]
    for _, old in stale:
        if hour := _hour_of(old):
            out.touched.add(hour)
    if stale:
        out.deleted = FlowTx.objects.filter(pk__in=[old["pk"] for _, old in stale]).delete()[0]
    if write:
        FlowTx.objects.bulk_create(
            write, batch_size=500, update_conflicts=True, unique_fields=["chain", "txid", "exchange", "counterparty"],
            update_fields=[*_VALUE_FIELDS, "updated_at"],
        )
    if write or stale:
        _flows_changed()  # pending inflow and the summary read FlowTx directly
    return out


def _rows_delete(queryset) -> StoreResult:
    out = StoreResult()
    for values in queryset.values("confirmed", "block_time"):
        if hour := _hour_of(values):
            out.touched.add(hour)
    out.deleted = queryset.delete()[0]
    if out.deleted:
        _flows_changed()
    return out


# --- Bitcoin: one address -----------------------------------------------------------------------------


@dataclass
class AddressSyncResult:
    wallet_id: int
    address: str
    skipped: str = ""  # why nothing was fetched
    pages: int = 0
    txs_seen: int = 0
    txs_new: int = 0
    malformed: int = 0
    errors: int = 0
    pending: int = 0
    complete: bool = False
    stored: StoreResult = field(default_factory=StoreResult)
    newest_block_time: datetime | None = None
    last_error: str = ""


@dataclass
class _Scan:
    txs: list[tuple[Tx, bool]] = field(default_factory=list)
    malformed: int = 0
    hit_stop: bool = False
    end: bool = False
    last_confirmed: str | None = None
    first_final: str | None = None
    pending: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None


def _page_scan(items: list, *, stop: str, tip: int, min_conf: int, where: str) -> _Scan:
    """One page of an address's history, newest first: parse, judge finality, find the stop marker."""
    scan = _Scan()
    confirmed_items = 0
    for i, item in enumerate(items):
        raw_txid = item.get("txid") if isinstance(item, dict) else None
        status = item.get("status") if isinstance(item, dict) else None
        if stop and raw_txid == stop:
            scan.hit_stop = True
            break
        if isinstance(status, dict) and status.get("confirmed") is True:
            confirmed_items += 1
            if isinstance(raw_txid, str):
                scan.last_confirmed = raw_txid
        try:
            tx = parse_tx(item)
        except MalformedTx as exc:
            scan.malformed += 1
            logger.warning("%s: skipping malformed transaction [%d] %r: %s", where, i, raw_txid, exc.reason)
            continue
        final = confirmations(tx, tip) >= min_conf
        if final and scan.first_final is None:
            scan.first_final = tx.txid
        scan.pending += not final
        if tx.block_time is not None:
            t = _to_dt(tx.block_time)
            scan.oldest = t if scan.oldest is None else min(scan.oldest, t)
            scan.newest = t if scan.newest is None else max(scan.newest, t)
        scan.txs.append((tx, final))
    # Esplora pages hold 25 confirmed transactions; a shorter page is the end of the history.
    scan.end = not scan.hit_stop and confirmed_items < CHAIN_PAGE_SIZE
    return scan


def _tip_height(client: EsploraClient) -> int:
    ttl = int(_setting("FLOWS_TIP_CACHE_SECONDS", 10))
    key = f"flows:tip:{client.source}"
    if ttl > 0 and (cached := cache.get(key)) is not None:
        return cached
    tip = client.tip_height()
    if ttl > 0:
        cache.set(key, tip, timeout=ttl)
    return tip


def btc_address_sync(*, wallet_id: int, client: EsploraClient | None = None) -> AddressSyncResult:
    """Fetch a BTC wallet's new transactions since its cursor and store their exchange flows.

    Newest first, page by page (``/txs`` then ``/txs/chain/:last``) down to the cursor, at most
    FLOWS_BTC_MAX_PAGES pages per run (the walk resumes there next run). Each page's rows commit
    with the cursor, so a fault keeps every page before it. Transactions with fewer than
    BTC_MIN_CONFIRMATIONS confirmations are stored as pending and walked again next run. Malformed
    transactions are skipped and counted; a malformed page ends the run early, keeping the rest.
    Raises SourceUnavailable (retry later, honouring retry_after) and SourceRejected.
    """
    wallet = ExchangeWallet.objects.get(pk=wallet_id, chain=Chain.BTC)
    result = AddressSyncResult(wallet.pk, wallet.address)
    if not wallet.active:
        result.skipped = "inactive"
        return result
    lock = f"flows:sync:{wallet.pk}"
    # Two walks of one address at once would fight over its cursor.
    if not cache.add(lock, 1, timeout=int(_setting("FLOWS_SYNC_LOCK_SECONDS", 600))):
        result.skipped = "another sync of this wallet is running"
        return result
    own_client = client is None
    client = client or esplora_client()
    try:
        _btc_walk(wallet, client, result)
    except SourceError as exc:
        result.errors += 1
        result.last_error = str(exc)
        _btc_sync_finish(client, result)
        if isinstance(exc, SourceUnavailable) and exc.status == 429:
            source_backoff_set(source=client.source, seconds=exc.retry_after)
        raise
    finally:
        cache.delete(lock)
        if own_client:
            client.close()
    _btc_sync_finish(client, result)
    return result


def _btc_sync_finish(client: EsploraClient, result: AddressSyncResult) -> None:
    s = result.stored
    _source_record(client.source, inserted=s.inserted, unchanged=s.unchanged, malformed=result.malformed,
                   errors=result.errors, last_event=result.newest_block_time, last_error=result.last_error)
    if s.touched:
        flow_bars_refresh_hours(chain=Chain.BTC, asset="BTC", hours=s.touched)


def _btc_walk(wallet: ExchangeWallet, client: EsploraClient, result: AddressSyncResult) -> None:
    cursor, _ = AddressCursor.objects.get_or_create(wallet=wallet)
    tip = _tip_height(client)
    info = client.address(wallet.address)
    quiet = (not cursor.walk_resume_txid and not cursor.has_pending and info.mempool_tx_count == 0
             and cursor.chain_tx_count is not None and cursor.chain_tx_count == info.chain_tx_count)
    if quiet:
        AddressCursor.objects.filter(pk=cursor.pk).update(tip_height_seen=tip, balance=info.balance,
                                                          updated_at=timezone.now())
        result.skipped = "no new transactions"
        result.complete = True
        return

    labels = selectors.wallet_labels(chain=Chain.BTC)
    min_conf = max(1, int(_setting("BTC_MIN_CONFIRMATIONS", 2)))
    max_pages = max(1, int(_setting("FLOWS_BTC_MAX_PAGES", 40)))
    where = f"{client.source} {wallet.address}"
    resuming = bool(cursor.walk_resume_txid)
    pending = 0

    def fetch(after: str | None) -> list | None:
        try:
            items = client.address_txs(wallet.address, after_txid=after)
        except MalformedResponse as exc:
            result.errors += 1
            result.last_error = str(exc)
            return None
        except SourceRejected:
            if after and after == cursor.walk_resume_txid:
                # The resume point vanished (reorganised away?): walk again from the top next run.
                logger.warning("%s: resume point %s rejected; restarting the walk", where, after)
                AddressCursor.objects.filter(pk=cursor.pk).update(walk_resume_txid="", walk_head_txid="",
                                                                  chain_tx_count=None)
            raise
        result.pages += 1
        return items

    def store(scan: _Scan) -> None:
        stored = flow_rows_store(chain=Chain.BTC, asset="BTC", txs=scan.txs, labels=labels)
        result.stored.add(stored)
        result.txs_seen += len(scan.txs)
        result.txs_new += len(stored.new_txids)
        result.malformed += scan.malformed
        if scan.newest and (result.newest_block_time is None or scan.newest > result.newest_block_time):
            result.newest_block_time = scan.newest
        if scan.oldest and (wallet.first_seen is None or scan.oldest < wallet.first_seen):
            wallet.first_seen = scan.oldest
            ExchangeWallet.objects.filter(pk=wallet.pk).update(first_seen=scan.oldest)
        cursor.txs_processed += len(stored.new_txids)

    if resuming:
        # Keep the newest transactions fresh while an old backlog is walked; storing is idempotent,
        # and the next walk from the top covers them properly.
        items = fetch(None)
        if items is None:
            return
        scan = _page_scan(items, stop="", tip=tip, min_conf=min_conf, where=where)
        pending += scan.pending
        with transaction.atomic():
            store(scan)
            cursor.tip_height_seen = tip
            cursor.balance = info.balance
            cursor.save()
        after: str | None = cursor.walk_resume_txid
    else:
        after = None

    while result.pages < max_pages + (1 if resuming else 0):
        items = fetch(after)
        if items is None:
            return
        scan = _page_scan(items, stop=cursor.last_seen_txid, tip=tip, min_conf=min_conf, where=where)
        if not resuming:
            pending += scan.pending
        head = cursor.walk_head_txid or scan.first_final or ""
        done = scan.hit_stop or scan.end or scan.last_confirmed is None
        with transaction.atomic():
            store(scan)
            cursor.tip_height_seen = tip
            cursor.balance = info.balance
            if done:
                cursor.last_seen_txid = head or cursor.last_seen_txid
                cursor.walk_resume_txid = cursor.walk_head_txid = ""
                cursor.has_pending = pending > 0
                cursor.mempool_tx_count = info.mempool_tx_count
                # After a resumed walk the transactions above its head still need a walk from the top.
                cursor.chain_tx_count = None if resuming else info.chain_tx_count
            else:
                cursor.walk_resume_txid = scan.last_confirmed or ""
                cursor.walk_head_txid = head
            cursor.save()
        if done:
            result.complete = True
            break
        after = scan.last_confirmed
    result.pending = pending
    if not result.complete:
        logger.info("%s: page cap (%d) reached; resuming after %s next run", where, max_pages,
                    cursor.walk_resume_txid)


def btc_pending_recheck(*, client: EsploraClient | None = None, limit: int = 200) -> dict[str, int]:
    """Settle pending BTC rows the address walks no longer see: confirmed, still waiting, or dropped.

    A transaction replaced or evicted from the mempool never shows up again in any address
    history; Esplora answers 404 for it, and its rows are deleted. Only rows pending for longer
    than FLOWS_PENDING_RECHECK_MINUTES are checked, so fresh ones are left to the walks.
    """
    age = timedelta(minutes=float(_setting("FLOWS_PENDING_RECHECK_MINUTES", 30)))
    txids = list(FlowTx.objects.pending().filter(chain=Chain.BTC, created_at__lt=timezone.now() - age)
                 .order_by("created_at").values_list("txid", flat=True).distinct()[:limit])
    counts = {"checked": 0, "confirmed": 0, "dropped": 0, "waiting": 0}
    if not txids:
        return counts
    own_client = client is None
    client = client or esplora_client()
    min_conf = max(1, int(_setting("BTC_MIN_CONFIRMATIONS", 2)))
    stored = StoreResult()
    try:
        tip = _tip_height(client)
        for txid in txids:
            status = client.tx_status(txid)
            counts["checked"] += 1
            rows = FlowTx.objects.filter(chain=Chain.BTC, txid=txid)
            with transaction.atomic():
                if status is None:
                    stored.add(_rows_delete(rows))
                    counts["dropped"] += 1
                    logger.info("%s: pending tx %s is gone (replaced or evicted); rows deleted", client.source, txid)
                    continue
                height = status.get("block_height") if status["confirmed"] else None
                block_time = status.get("block_time") if status["confirmed"] else None
                if status["confirmed"] and not (isinstance(height, int) and isinstance(block_time, int)):
                    logger.warning("%s: tx status of %s without block height/time: %r", client.source, txid, status)
                    continue
                final = height is not None and tip - height + 1 >= min_conf
                if rows.update(block_height=height, block_time=_to_dt(block_time), confirmed=final,
                               updated_at=timezone.now()):
                    _flows_changed()
                if final:
                    stored.touched.add(selectors.floor_hour(_to_dt(block_time)))
                counts["confirmed" if final else "waiting"] += 1
    except SourceError as exc:
        _source_record(client.source, errors=1, last_error=str(exc))
        raise
    finally:
        if own_client:
            client.close()
        if stored.touched:
            flow_bars_refresh_hours(chain=Chain.BTC, asset="BTC", hours=stored.touched)
    return counts


def btc_reserves_snapshot(*, at: datetime | None = None) -> int:
    """Sum the last known balances of each exchange's active BTC wallets into this hour's snapshot."""
    hour = selectors.floor_hour(at or timezone.now())
    rows = AddressCursor.objects.filter(wallet__chain=Chain.BTC, wallet__active=True, balance__isnull=False)
    sums: dict[str, list[int]] = {}
    for exchange, balance in rows.values_list("wallet__exchange", "balance"):
        for key in (exchange, ALL_EXCHANGES):
            item = sums.setdefault(key, [0, 0])
            item[0] += int(balance)
            item[1] += 1
    if not sums:
        return 0
    with transaction.atomic():
        ReserveSnapshot.objects.bulk_create(
            [ReserveSnapshot(chain=Chain.BTC, asset="BTC", exchange=x, time=hour, balance=b, wallets=n)
             for x, (b, n) in sums.items()],
            update_conflicts=True, unique_fields=["chain", "asset", "exchange", "time"],
            update_fields=["balance", "wallets", "updated_at"],
        )
        updated = 0
        for exchange, (balance, _) in sums.items():
            updated += FlowBar.objects.filter(chain=Chain.BTC, asset="BTC", exchange=exchange,
                                              bucket_start=hour).update(reserve=balance)
        if updated:
            _flows_changed()
    return len(sums)


# --- Ethereum: ERC-20 Transfer logs --------------------------------------------------------------------


@dataclass
class EthSyncResult:
    from_block: int | None = None
    to_block: int | None = None
    tip: int | None = None
    logs: int = 0
    malformed: int = 0
    fork_height: int | None = None
    rolled_back: int = 0
    stored: StoreResult = field(default_factory=StoreResult)
    touched: dict[str, set[datetime]] = field(default_factory=dict)
    disabled: bool = False


def eth_transfers_sync(*, from_block: int | None = None, to_block: int | None = None,
                       client: EthRpcClient | None = None) -> EthSyncResult:
    """Scan USDT/USDC Transfer logs touching labelled ETH wallets, with reorg handling.

    Each run re-scans the last ETH_REORG_DEPTH blocks below the cursor. Their stored hashes are
    compared with the node's first: if they differ (reorg.find_fork_point), flows above the fork
    are deleted and the blocks re-ingested. At most ETH_MAX_BLOCKS_PER_RUN blocks per run; the
    first run starts ETH_BACKFILL_BLOCKS below the tip (or at ETH_START_BLOCK).
    """
    result = EthSyncResult()
    own_client = client is None
    client = client or eth_rpc_client()
    if client is None:
        result.disabled = True
        return result
    try:
        _eth_scan(client, result, from_block, to_block)
    except SourceError as exc:
        _source_record(client.source, errors=1, last_error=str(exc))
        if isinstance(exc, SourceUnavailable) and exc.status == 429:
            source_backoff_set(source=client.source, seconds=exc.retry_after)
        raise
    finally:
        if own_client:
            client.close()
    s = result.stored
    _source_record(client.source, inserted=s.inserted, unchanged=s.unchanged, malformed=result.malformed)
    for asset, hours in result.touched.items():
        if hours:
            flow_bars_refresh_hours(chain=Chain.ETH, asset=asset, hours=hours)
    return result


def _eth_scan(client: EthRpcClient, result: EthSyncResult, from_block: int | None, to_block: int | None) -> None:
    depth = max(1, int(_setting("ETH_REORG_DEPTH", 12)))
    tip = client.block_number()
    result.tip = tip
    cursor, _ = ChainCursor.objects.get_or_create(chain=Chain.ETH)
    scanned = cursor.height
    if scanned is not None and tip < scanned:
        # A lagging node (or a switch of provider) is no reason to roll anything back: wait for it.
        logger.info("%s: node tip %d is below our cursor %d; nothing to do", client.source, tip, scanned)
        return
    if from_block is None:
        if scanned is None:
            start = _setting("ETH_START_BLOCK", None)
            from_block = int(start) if start is not None else max(0, tip - int(_setting("ETH_BACKFILL_BLOCKS", 300)))
        else:
            from_block = max(0, scanned - depth + 1)
    fork = None
    if scanned is not None:
        check_lo = max(0, scanned - depth + 1)
        stored_hashes = dict(BlockHash.objects.filter(chain=Chain.ETH, height__gte=check_lo, height__lte=scanned)
                             .values_list("height", "hash"))
        if stored_hashes:
            incoming = {h: b.hash for h, b in client.blocks(stored_hashes).items()}
            try:
                fork = find_fork_point(stored_hashes, incoming)
            except DeepReorg:
                fork = min(stored_hashes) - 1
                logger.warning("%s: reorg deeper than %d blocks; rolling back to %d", client.source, depth, fork)
    if fork is not None:
        result.fork_height = fork
        from_block = min(from_block, fork + 1)
    to_block = min(tip, to_block if to_block is not None else tip,
                   from_block + int(_setting("ETH_MAX_BLOCKS_PER_RUN", 2000)) - 1)
    result.from_block, result.to_block = from_block, to_block
    if to_block < from_block and fork is None:
        return

    wallets = selectors.wallet_addresses(chain=Chain.ETH)
    labels = selectors.wallet_labels(chain=Chain.ETH)
    logs = []
    if wallets and to_block >= from_block:
        logs = client.transfer_logs(
            from_block=from_block, to_block=to_block, tokens=list(TOKENS), wallets=wallets, topic0=TRANSFER_TOPIC,
            chunk_blocks=int(_setting("ETH_LOGS_CHUNK_BLOCKS", 2000)),
            wallets_per_query=int(_setting("ETH_LOGS_WALLETS_PER_QUERY", 500)),
        )
    result.logs = len(logs)
    heights = set()
    for log in logs:
        h = log.get("blockNumber") if isinstance(log, dict) else None
        if isinstance(h, str) and h.startswith("0x"):
            heights.add(int(h, 16))
    heights |= set(range(max(from_block, to_block - depth + 1), to_block + 1))
    headers = client.blocks(sorted(h for h in heights if from_block <= h <= to_block)) if to_block >= from_block \
        else {}
    block_times = {h: b.timestamp for h, b in headers.items()}

    per_asset: dict[str, list[tuple[Tx, bool]]] = {asset: [] for asset in TOKENS.values()}
    for i, log in enumerate(logs):
        try:
            transfer = parse_transfer_log(log, block_times=block_times)
        except MalformedTx as exc:
            result.malformed += 1
            logger.warning("%s: skipping malformed log [%d] %r: %s", client.source, i, repr(log)[:160], exc.reason)
            continue
        asset = TOKENS.get(transfer.token)
        if asset is None or transfer.removed or transfer.tx.block_height is None:
            continue
        header = headers.get(transfer.tx.block_height)
        block_hash = log.get("blockHash")
        if header is None or (isinstance(block_hash, str) and block_hash.lower() != header.hash):
            # The chain moved between eth_getLogs and eth_getBlockByNumber: try again shortly.
            raise SourceUnavailable(f"block {transfer.tx.block_height} changed during the scan", retry_after=5.0,
                                    source=client.source, url=client.url)
        per_asset[asset].append((transfer.tx, True))

    with transaction.atomic():
        ChainCursor.objects.select_for_update().filter(pk=cursor.pk).values_list("pk").get()
        if fork is not None:
            gone = _rows_delete(FlowTx.objects.filter(chain=Chain.ETH, asset__in=list(TOKENS.values()),
                                                      block_height__gt=fork))
            for asset in TOKENS.values():
                result.touched.setdefault(asset, set()).update(gone.touched)
            result.rolled_back = gone.deleted
            BlockHash.objects.filter(chain=Chain.ETH, height__gt=fork).delete()
            logger.warning("%s: reorg: fork at %d, %d flow rows rolled back", client.source, fork, gone.deleted)
        for asset, txs in per_asset.items():
            stored = flow_rows_store(chain=Chain.ETH, asset=asset, txs=txs, labels=labels)
            result.stored.add(stored)
            result.touched.setdefault(asset, set()).update(stored.touched)
        BlockHash.objects.bulk_create(
            [BlockHash(chain=Chain.ETH, height=h, hash=b.hash, time=_to_dt(b.timestamp)) for h, b in headers.items()],
            update_conflicts=True, unique_fields=["chain", "height"], update_fields=["hash", "time"], batch_size=500,
        )
        keep = int(_setting("ETH_BLOCK_HASHES_KEPT", 10_000))
        BlockHash.objects.filter(chain=Chain.ETH, height__lt=to_block - keep).delete()
        if to_block >= from_block:
            cursor.height = max(to_block, cursor.height or 0) if fork is None else to_block
        elif fork is not None:
            cursor.height = fork
        cursor.save(update_fields=["height", "updated_at"])


# --- Ethereum: native ETH via Etherscan (optional) -----------------------------------------------------


def _native_tx(item: dict) -> Tx:
    """An Etherscan txlist item -> Tx: the sender pays value + gas fee, the receiver gets the value.

    A failed transaction (isError "1") moves no ETH but still burns its fee. Contract creations have
    no receiver (an output without address). Raises MalformedTx.
    """
    def integer(key: str) -> int:
        value = item.get(key)
        if not isinstance(value, str) or not value.isdigit():
            raise MalformedTx(f"{key} is not a decimal integer string")
        return int(value)

    tx_hash = item.get("hash")
    sender, receiver = item.get("from"), item.get("to") or None
    if not isinstance(tx_hash, str) or len(tx_hash) != 66 or not isinstance(sender, str):
        raise MalformedTx("hash or from missing")
    value = 0 if item.get("isError") == "1" else integer("value")
    fee = integer("gasUsed") * integer("gasPrice")
    return Tx(tx_hash.lower(), integer("blockNumber"), integer("timeStamp"), True, ((sender.lower(), value + fee),),
              ((receiver.lower() if isinstance(receiver, str) else None, value),), fee)


def eth_native_sync(*, wallet_id: int, client: EtherscanClient | None = None) -> StoreResult:
    """Native ETH transfers of one labelled ETH wallet from Etherscan, since its block cursor.

    One page (ETHERSCAN_PAGE_SIZE, oldest first) per run, re-reading the last ETH_REORG_DEPTH blocks;
    the cursor stops below the last block of a full page, which may continue on the next one.
    Internal transactions (ETH sent by contracts) are not included. Does nothing without a key.
    """
    client = client or etherscan_client()
    out = StoreResult()
    if client is None:
        return out
    wallet = ExchangeWallet.objects.get(pk=wallet_id, chain=Chain.ETH)
    cursor, _ = AddressCursor.objects.get_or_create(wallet=wallet)
    depth = max(1, int(_setting("ETH_REORG_DEPTH", 12)))
    page_size = int(_setting("ETHERSCAN_PAGE_SIZE", 1000))
    start = max(0, (cursor.tip_height_seen or int(_setting("ETH_NATIVE_START_BLOCK", 0))) - depth + 1)
    try:
        items = client.account_txlist(wallet.address, start_block=start, offset=page_size)
    except SourceError as exc:
        _source_record(client.source, errors=1, last_error=str(exc))
        raise
    txs, malformed = [], 0
    for item in items:
        try:
            txs.append((_native_tx(item), True))
        except MalformedTx as exc:
            malformed += 1
            logger.warning("%s: skipping malformed transaction %r: %s", client.source, item.get("hash"), exc.reason)
    heights = [tx.block_height for tx, _ in txs]
    with transaction.atomic():
        out = flow_rows_store(chain=Chain.ETH, asset="ETH", txs=txs,
                              labels=selectors.wallet_labels(chain=Chain.ETH))
        if heights:
            cursor.tip_height_seen = max(heights) - (1 if len(items) >= page_size else 0)
            cursor.txs_processed += len(out.new_txids)
            cursor.save(update_fields=["tip_height_seen", "txs_processed", "updated_at"])
    _source_record(client.source, inserted=out.inserted, unchanged=out.unchanged, malformed=malformed)
    if out.touched:
        flow_bars_refresh_hours(chain=Chain.ETH, asset="ETH", hours=out.touched)
    return out


# --- bars ------------------------------------------------------------------------------------------


def _float_or_none(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def flow_bars_refresh_hours(*, chain: str, asset: str, hours: Iterable[datetime], publish: bool = True) -> int:
    """Refresh the bars of the touched hours, one contiguous run of hours at a time."""
    ordered = sorted({selectors.floor_hour(h) for h in hours})
    changed = 0
    run_start = prev = None
    for hour in ordered:
        if run_start is None:
            run_start = prev = hour
        elif hour - prev > HOUR * 24:  # gaps of a day or less are cheaper refreshed in one go
            changed += flow_bars_refresh(chain=chain, asset=asset, start=run_start, end=prev, publish=publish)
            run_start = hour
        prev = hour
    if run_start is not None:
        changed += flow_bars_refresh(chain=chain, asset=asset, start=run_start, end=prev, publish=publish)
    return changed


def flow_bars_refresh(*, chain: str, asset: str, start: datetime, end: datetime, publish: bool = True) -> int:
    """Recompute the hourly bars of the hours starting in [start, end] from final FlowTx rows.

    An exchange gets a bar for an hour when it has flows in it (``all`` whenever any exchange
    does). Sums, counts, mean inflow and whale ratio come from apps.flows.aggregate.flows_by_hour
    over the hour's rows; netflow_z is then recomputed for the touched hours and the
    NETFLOW_Z_WINDOW_DAYS after them, from the stored netflows with empty hours as zero. USD values
    use our hourly close; the reserve comes from that hour's ReserveSnapshot. Pushes the changed
    bars to the "flows" group after commit.
    """
    start, end = selectors.floor_hour(start), selectors.floor_hour(end)
    if end < start:
        start, end = end, start
    whale_n = int(_setting("WHALE_TOP_N", 10))
    with transaction.atomic():
        # One refresh per chain at a time: each sees every row committed before it took the lock.
        cursor, _ = ChainCursor.objects.get_or_create(chain=chain)
        ChainCursor.objects.select_for_update().filter(pk=cursor.pk).values_list("pk").get()
        records = selectors.flow_records(chain=chain, asset=asset, start=start, end=end + HOUR)
        present = {(r.exchange, selectors.floor_hour(_to_dt(r.block_time))) for r in records}
        present |= {(ALL_EXCHANGES, hour) for _, hour in present}
        bars: list[FlowBar] = []
        if records:
            frame = flows_by_hour(records, whale_n=whale_n, start=pd.Timestamp(start), end=pd.Timestamp(end))
            frame = frame[[(x, t.to_pydatetime()) in present
                           for x, t in zip(frame["exchange"], frame["bucket_start"], strict=True)]]
            frame = add_usd(frame, selectors.hourly_close_usd(asset=asset, start=start, end=end),
                            decimals=ASSET_DECIMALS[asset])
            reserves = selectors.reserves_by_hour(chain=chain, asset=asset, start=start, end=end)
            for row in frame.itertuples(index=False):
                hour = row.bucket_start.to_pydatetime()
                bars.append(FlowBar(
                    chain=chain, asset=asset, exchange=row.exchange, interval="1h", bucket_start=hour,
                    inflow=int(row.inflow), outflow=int(row.outflow), netflow=int(row.netflow),
                    internal=int(row.internal), fee=int(row.fee), inflow_txs=int(row.inflow_txs),
                    outflow_txs=int(row.outflow_txs), mean_inflow=_float_or_none(row.mean_inflow),
                    whale_ratio=_float_or_none(row.whale_ratio), price_usd=_float_or_none(row.price_usd),
                    inflow_usd=_float_or_none(row.inflow_usd), outflow_usd=_float_or_none(row.outflow_usd),
                    netflow_usd=_float_or_none(row.netflow_usd), reserve=reserves.get((row.exchange, hour)),
                ))
        in_range = FlowBar.objects.filter(chain=chain, asset=asset, interval="1h", bucket_start__gte=start,
                                          bucket_start__lte=end)
        stale = [pk for pk, x, t in in_range.values_list("pk", "exchange", "bucket_start") if (x, t) not in present]
        if stale:
            FlowBar.objects.filter(pk__in=stale).delete()
        if bars:
            FlowBar.objects.bulk_create(
                bars, batch_size=500, update_conflicts=True,
                unique_fields=["chain", "asset", "exchange", "interval", "bucket_start"],
                update_fields=["inflow", "outflow", "netflow", "internal", "fee", "inflow_txs", "outflow_txs",
                               "mean_inflow", "whale_ratio", "price_usd", "inflow_usd", "outflow_usd",
                               "netflow_usd", "reserve", "updated_at"],
            )
        z_changed = _netflow_z_refresh(chain=chain, asset=asset, start=start, end=end)
        if bars or stale or z_changed:
            _flows_changed()
        if publish and (bars or stale):
            transaction.on_commit(lambda: flows_publish(chain=chain, asset=asset, start=start, end=end))
        transaction.on_commit(lambda: flow_bars_changed.send(sender=FlowBar, chain=chain, asset=asset))
    return len(bars) + len(stale)


def _netflow_z_refresh(*, chain: str, asset: str, start: datetime, end: datetime) -> int:
    window = int(_setting("NETFLOW_Z_WINDOW_DAYS", 30)) * 24
    min_periods = min(window, int(_setting("NETFLOW_Z_MIN_HOURS", 24)))
    qs = FlowBar.objects.filter(chain=chain, asset=asset, interval="1h")
    first = qs.aggregate(first=Min("bucket_start"))["first"]
    if first is None:
        return 0
    lo = max(first, start - window * HOUR)
    hi = end + window * HOUR
    rows = list(qs.filter(bucket_start__gte=lo, bucket_start__lte=hi)
                .values_list("pk", "exchange", "bucket_start", "netflow", "netflow_z"))
    if not rows:
        return 0
    last = max(r[2] for r in rows)
    grid = pd.date_range(lo, last, freq="h")
    by_exchange: dict[str, list] = {}
    for row in rows:
        by_exchange.setdefault(row[1], []).append(row)
    updates = []
    for items in by_exchange.values():
        series = pd.Series({pd.Timestamp(t): float(int(n)) for _, _, t, n, _ in items}, dtype="float64")
        z = netflow_zscore(series.reindex(grid, fill_value=0.0), window, min_periods)
        for pk, _, t, _, old in items:
            if t < start:
                continue
            new = _float_or_none(z.get(pd.Timestamp(t)))
            if new != old and not (new is None and old is None):
                updates.append(FlowBar(pk=pk, netflow_z=new))
    FlowBar.objects.bulk_update(updates, ["netflow_z"], batch_size=500)
    return len(updates)


def flow_bars_refresh_recent(*, hours: int = 3) -> int:
    """Refresh the last few hours of every series: prices and reserves arrive after the flows."""
    now = timezone.now()
    changed = 0
    for chain, asset in selectors.assets_with_bars():
        changed += flow_bars_refresh(chain=chain, asset=asset, start=now - hours * HOUR, end=now)
    return changed


def flows_publish(*, chain: str, asset: str, start: datetime, end: datetime) -> None:
    """Send the bars of [start, end] to the "flows" group; pages merge them by (asset, exchange, hour)."""
    rows = selectors.flow_bars(chain=chain, asset=asset, start=start, end=end + HOUR)
    try:
        async_to_sync(get_channel_layer().group_send)(FLOWS_GROUP, {
            "type": "flows.update", "chain": chain, "asset": asset, "bars": rows[-500:],
            "pending": [{**p, "oldest": selectors.iso(p["oldest"])}
                        for p in selectors.pending_inflows(chain=chain, asset=asset)],
        })
    except Exception:  # a live push must never fail the sync that already committed
        logger.exception("flows live push failed for %s %s", chain, asset)
