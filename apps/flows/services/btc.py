"""Bitcoin flows: walking each labelled address's history on Esplora, settling pending
transactions, and the hourly reserve snapshot.

A walk goes newest first, page by page, down to the address's cursor; each page's rows commit
with the cursor, so a worker killed mid-walk keeps every page before it and the next run resumes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.flows import selectors
from apps.flows.clients import (
    CHAIN_PAGE_SIZE,
    AddressInfo,
    EsploraClient,
    MalformedResponse,
    SourceError,
    SourceRejected,
    SourceUnavailable,
)
from apps.flows.esplora import MalformedTx, Tx, confirmations, parse_tx
from apps.flows.models import ALL_EXCHANGES, AddressCursor, Chain, ExchangeWallet, FlowBar, FlowTx, ReserveSnapshot
from apps.flows.services.bars import flow_bars_refresh_hours
from apps.flows.services.sources import esplora_client, source_backoff_set, source_record
from apps.flows.services.store import StoreResult, flow_rows_delete, flow_rows_store, flows_changed, unix_to_dt

logger = logging.getLogger(__name__)


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
            t = unix_to_dt(tx.block_time)
            scan.oldest = t if scan.oldest is None else min(scan.oldest, t)
            scan.newest = t if scan.newest is None else max(scan.newest, t)
        scan.txs.append((tx, final))
    # Esplora pages hold 25 confirmed transactions; a shorter page is the end of the history.
    scan.end = not scan.hit_stop and confirmed_items < CHAIN_PAGE_SIZE
    return scan


def _tip_height(client: EsploraClient) -> int:
    ttl = settings.FLOWS_TIP_CACHE_SECONDS
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
    if not cache.add(lock, 1, timeout=settings.FLOWS_SYNC_LOCK_SECONDS):
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
            source_backoff_set(source=client.source, retry_after=exc.retry_after)
        raise
    finally:
        cache.delete(lock)
        if own_client:
            client.close()
    _btc_sync_finish(client, result)
    return result


def _btc_sync_finish(client: EsploraClient, result: AddressSyncResult) -> None:
    s = result.stored
    source_record(client.source, inserted=s.inserted, unchanged=s.unchanged, malformed=result.malformed,
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
    _Walk(wallet=wallet, client=client, result=result, cursor=cursor, tip=tip, info=info).run()


@dataclass
class _Walk:
    """One run of an address walk: fetch a page, store it with the cursor, go on or stop."""

    wallet: ExchangeWallet
    client: EsploraClient
    result: AddressSyncResult
    cursor: AddressCursor
    tip: int
    info: AddressInfo
    pending: int = 0

    def __post_init__(self) -> None:
        self.labels = selectors.wallet_labels(chain=Chain.BTC)
        self.min_conf = max(1, settings.BTC_MIN_CONFIRMATIONS)
        self.max_pages = max(1, settings.FLOWS_BTC_MAX_PAGES)
        self.where = f"{self.client.source} {self.wallet.address}"
        self.resuming = bool(self.cursor.walk_resume_txid)

    def run(self) -> None:
        after: str | None = None
        if self.resuming:
            if not self._refresh_top():
                return
            after = self.cursor.walk_resume_txid
        while self.result.pages < self.max_pages + (1 if self.resuming else 0):
            items = self._fetch(after)
            if items is None:
                return
            scan = _page_scan(items, stop=self.cursor.last_seen_txid, tip=self.tip, min_conf=self.min_conf,
                              where=self.where)
            if self._page_commit(scan):
                self.result.complete = True
                break
            after = scan.last_confirmed
        self.result.pending = self.pending
        if not self.result.complete:
            logger.info("%s: page cap (%d) reached; resuming after %s next run", self.where, self.max_pages,
                        self.cursor.walk_resume_txid)

    def _fetch(self, after: str | None) -> list | None:
        """A page of transactions, or None when the page is malformed (the run ends, keeping the rest)."""
        try:
            items = self.client.address_txs(self.wallet.address, after_txid=after)
        except MalformedResponse as exc:
            self.result.errors += 1
            self.result.last_error = str(exc)
            return None
        except SourceRejected:
            if after and after == self.cursor.walk_resume_txid:
                # The resume point vanished (reorganised away?): walk again from the top next run.
                logger.warning("%s: resume point %s rejected; restarting the walk", self.where, after)
                AddressCursor.objects.filter(pk=self.cursor.pk).update(walk_resume_txid="", walk_head_txid="",
                                                                       chain_tx_count=None)
            raise
        self.result.pages += 1
        return items

    def _refresh_top(self) -> bool:
        """While an old backlog is walked, keep the newest transactions fresh too: storing is
        idempotent, and the next walk from the top covers them properly."""
        items = self._fetch(None)
        if items is None:
            return False
        scan = _page_scan(items, stop="", tip=self.tip, min_conf=self.min_conf, where=self.where)
        self.pending += scan.pending
        with transaction.atomic():
            self._store(scan)
            self.cursor.tip_height_seen = self.tip
            self.cursor.balance = self.info.balance
            self.cursor.save()
        return True

    def _page_commit(self, scan: _Scan) -> bool:
        """Store one page with the cursor; True when the walk reached its end."""
        cursor, info = self.cursor, self.info
        if not self.resuming:
            self.pending += scan.pending
        head = cursor.walk_head_txid or scan.first_final or ""
        done = scan.hit_stop or scan.end or scan.last_confirmed is None
        with transaction.atomic():
            self._store(scan)
            cursor.tip_height_seen = self.tip
            cursor.balance = info.balance
            if done:
                cursor.last_seen_txid = head or cursor.last_seen_txid
                cursor.walk_resume_txid = cursor.walk_head_txid = ""
                cursor.has_pending = self.pending > 0
                cursor.mempool_tx_count = info.mempool_tx_count
                # After a resumed walk the transactions above its head still need a walk from the top.
                cursor.chain_tx_count = None if self.resuming else info.chain_tx_count
            else:
                cursor.walk_resume_txid = scan.last_confirmed or ""
                cursor.walk_head_txid = head
            cursor.save()
        return done

    def _store(self, scan: _Scan) -> None:
        result, wallet = self.result, self.wallet
        stored = flow_rows_store(chain=Chain.BTC, asset="BTC", txs=scan.txs, labels=self.labels)
        result.stored.add(stored)
        result.txs_seen += len(scan.txs)
        result.txs_new += len(stored.new_txids)
        result.malformed += scan.malformed
        if scan.newest and (result.newest_block_time is None or scan.newest > result.newest_block_time):
            result.newest_block_time = scan.newest
        if scan.oldest and (wallet.first_seen is None or scan.oldest < wallet.first_seen):
            wallet.first_seen = scan.oldest
            ExchangeWallet.objects.filter(pk=wallet.pk).update(first_seen=scan.oldest)
        self.cursor.txs_processed += len(stored.new_txids)


def btc_pending_recheck(*, client: EsploraClient | None = None, limit: int = 200) -> dict[str, int]:
    """Settle pending BTC rows the address walks no longer see: confirmed, still waiting, or dropped.

    A transaction replaced or evicted from the mempool never shows up again in any address
    history; Esplora answers 404 for it, and its rows are deleted. Only rows pending for longer
    than FLOWS_PENDING_RECHECK_MINUTES are checked, so fresh ones are left to the walks.
    """
    age = timedelta(minutes=settings.FLOWS_PENDING_RECHECK_MINUTES)
    txids = list(FlowTx.objects.pending().filter(chain=Chain.BTC, created_at__lt=timezone.now() - age)
                 .order_by("created_at").values_list("txid", flat=True).distinct()[:limit])
    counts = {"checked": 0, "confirmed": 0, "dropped": 0, "waiting": 0}
    if not txids:
        return counts
    own_client = client is None
    client = client or esplora_client()
    stored = StoreResult()
    try:
        tip = _tip_height(client)
        for txid in txids:
            outcome = _pending_settle(client, txid, tip=tip, stored=stored)
            counts["checked"] += 1
            if outcome:
                counts[outcome] += 1
    except SourceError as exc:
        source_record(client.source, errors=1, last_error=str(exc))
        raise
    finally:
        if own_client:
            client.close()
        if stored.touched:
            flow_bars_refresh_hours(chain=Chain.BTC, asset="BTC", hours=stored.touched)
    return counts


def _pending_settle(client: EsploraClient, txid: str, *, tip: int, stored: StoreResult) -> str | None:
    """'dropped', 'confirmed' or 'waiting' for one pending transaction (None: the answer was unusable)."""
    status = client.tx_status(txid)
    rows = FlowTx.objects.filter(chain=Chain.BTC, txid=txid)
    with transaction.atomic():
        if status is None:
            stored.add(flow_rows_delete(rows))
            logger.info("%s: pending tx %s is gone (replaced or evicted); rows deleted", client.source, txid)
            return "dropped"
        height = status.get("block_height") if status["confirmed"] else None
        block_time = status.get("block_time") if status["confirmed"] else None
        if status["confirmed"] and not (isinstance(height, int) and isinstance(block_time, int)):
            logger.warning("%s: tx status of %s without block height/time: %r", client.source, txid, status)
            return None
        final = height is not None and tip - height + 1 >= max(1, settings.BTC_MIN_CONFIRMATIONS)
        if rows.update(block_height=height, block_time=unix_to_dt(block_time), confirmed=final,
                       updated_at=timezone.now()):
            flows_changed()
        if final:
            stored.touched.add(selectors.floor_hour(unix_to_dt(block_time)))
        return "confirmed" if final else "waiting"


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
            flows_changed()
    return len(sums)
