"""Trades and books from exchanges: REST polls and the collector's stream batches.

Every poll and every stream batch ends in :func:`apps.pressure.services.market_batch_ingest`,
the ingestion path all sources share. A feed's cursor moves in the same transaction as the
trades it covers, so a process killed at any point resumes exactly where its last commit
ended: no gap (the next fetch starts after the cursor) and no duplicate (trade ids are unique).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from apps.exchanges.adapters import ExchangeAdapter
from apps.exchanges.models import Feed
from apps.exchanges.normalize import book_summary, trades_normalize
from apps.exchanges.services.polls import liquidations_ingest
from apps.exchanges.services.sources import adapter_get, source_call, spec_of
from apps.markets.services import source_status_record
from apps.markets.validation import Validated
from apps.pressure.services import market_batch_ingest
from pressureweb.lib.times import ms_to_dt, now_ms

logger = logging.getLogger(__name__)

MAX_PAGES = 20


# --------------------------------------------------------------------------- trades


@dataclass
class TradesResult:
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    pages: int = 0
    gap: bool = False
    reasons: dict = field(default_factory=dict)


def trades_ingest(*, feed: Feed, adapter: ExchangeAdapter, trades: list[dict], books: Sequence = (),
                  advance_cursor: bool = True, cursor_token: str | None = None, contract_size=None,
                  counters: dict | None = None, received_at: datetime | None = None, publish: bool = True,
                  sequence_gaps: int = 0) -> TradesResult:
    """Normalise (outside the transaction), then store trades and book samples and move the cursor
    in one transaction."""
    instrument = feed.instrument
    norm = trades_normalize(trades, contract_size=contract_size)
    if norm.rejected:
        logger.warning("%s %s: rejected %d of %d trades: %s (example: %r)", feed.source.slug, instrument.symbol,
                       norm.rejected_total, len(trades), dict(norm.rejected),
                       _short(next(iter(norm.examples.values()))))
    result = TradesResult(received=len(trades), rejected=norm.rejected_total, reasons=dict(norm.rejected))
    updates: dict = {}
    with transaction.atomic():
        if norm.rows or books:
            validated = Validated(rows=norm.rows)
            stored = market_batch_ingest(instrument=instrument, trades=norm.rows, book_samples=books,
                                         source=feed.source.slug, publish=publish, sequence_gaps=sequence_gaps,
                                         validated=validated)
            result.inserted, result.duplicates = stored.trades_inserted, stored.duplicates
        elif sequence_gaps:
            source_status_record(name=feed.source.slug, sequence_gaps=sequence_gaps)
        if norm.rejected:
            source_status_record(name=feed.source.slug, rejected=norm.rejected_total,
                                 last_error=f"rejected trades: {dict(norm.rejected)}")
        if advance_cursor and norm.max_id is not None and adapter.cursor_kind == "id":
            updates["cursor_trade_id"] = Greatest(Coalesce(F("cursor_trade_id"), norm.max_id), norm.max_id)
        if advance_cursor and norm.max_time_ms is not None:
            updates["cursor_time_ms"] = Greatest(Coalesce(F("cursor_time_ms"), norm.max_time_ms), norm.max_time_ms)
        if advance_cursor and cursor_token:
            updates["cursor_token"] = cursor_token
        if norm.max_time_ms is not None:
            updates["last_event_ms"] = Greatest(Coalesce(F("last_event_ms"), norm.max_time_ms), norm.max_time_ms)
        increments = {"trades_stored": result.inserted, "duplicates": result.duplicates, "rejected": result.rejected}
        if books:
            updates["last_book_at"] = received_at or timezone.now()
        for name, value in (counters or {}).items():
            if name in _PLAIN_FIELDS:
                updates[name] = value
            else:
                increments[name] = increments.get(name, 0) + value
        updates.update({name: F(name) + value for name, value in increments.items() if value})
        if updates:
            Feed.objects.filter(pk=feed.pk).update(**updates)
    return result


_PLAIN_FIELDS = {"last_message_at", "message_rate", "connected", "last_error", "last_error_at"}


def _short(obj) -> str:
    text = repr(obj)
    return text if len(text) < 300 else text[:300] + "..."


def trades_poll(*, feed_id: int, max_pages: int = MAX_PAGES, until_id: int | None = None,
                publish: bool = True) -> TradesResult:
    """Fetch trades after the feed's stored cursor, page by page, storing each page as it comes.

    ``until_id`` stops once that id is reached (a stream backfill only needs to close its gap).
    """
    feed = Feed.objects.select_related("source", "instrument__exchange").get(pk=feed_id)
    adapter = adapter_get(feed.source.slug)
    spec = spec_of(feed.instrument)
    size = source_call(feed.source, adapter, adapter.contract_size, adapter.rest, spec)
    total = TradesResult()
    for _ in range(max_pages):
        page = source_call(feed.source, adapter, adapter.trades_page, spec, after_id=feed.cursor_trade_id,
                           after_ms=feed.cursor_time_ms, cursor_token=feed.cursor_token or None)
        if until_id is not None:
            page.trades = [t for t in page.trades if adapter.trade_id(t) is None or adapter.trade_id(t) < until_id]
        result = trades_ingest(feed=feed, adapter=adapter, trades=page.trades, contract_size=size,
                               cursor_token=page.cursor_token, publish=publish,
                               counters={"unfillable_gaps": 1} if page.gap else None)
        total.pages += 1
        total.received += result.received
        total.inserted += result.inserted
        total.duplicates += result.duplicates
        total.rejected += result.rejected
        for reason, count in result.reasons.items():
            total.reasons[reason] = total.reasons.get(reason, 0) + count
        total.gap = total.gap or page.gap
        if page.gap:
            logger.warning("%s %s: recent trades do not reach back to the cursor; trades may be missing",
                           feed.source.slug, feed.instrument.symbol)
        feed.refresh_from_db(fields=["cursor_trade_id", "cursor_time_ms", "cursor_token"])
        reached = until_id is not None and feed.cursor_trade_id is not None and feed.cursor_trade_id >= until_id - 1
        if not page.more or not page.trades or reached:
            break
    return total


def trades_backfill(*, feed_id: int, until_id: int | None = None) -> TradesResult:
    """Close a stream gap over REST from the stored cursor; counted as a backfill on the feed."""
    result = trades_poll(feed_id=feed_id, until_id=until_id)
    Feed.objects.filter(pk=feed_id).update(backfills=F("backfills") + 1)
    logger.info("feed %s backfilled %d trades (%d new) in %d pages", feed_id, result.received, result.inserted,
                result.pages)
    return result


# --------------------------------------------------------------------------- books


def book_snapshot_poll(*, feed_id: int) -> bool:
    """One REST order-book snapshot -> one BookSample (the stream samples more often)."""
    feed = Feed.objects.select_related("source", "instrument__exchange").get(pk=feed_id)
    adapter = adapter_get(feed.source.slug)
    spec = spec_of(feed.instrument)
    size = source_call(feed.source, adapter, adapter.contract_size, adapter.rest, spec)
    book = source_call(feed.source, adapter, adapter.fetch_order_book, spec)
    summary = book_summary(book, time_ms=book.get("timestamp") or now_ms(), contract_size=size,
                           bands=tuple(settings.BOOK_DEPTH_BANDS))
    if summary is None:
        logger.warning("%s %s: empty or crossed book snapshot", feed.source.slug, feed.instrument.symbol)
        return False
    with transaction.atomic():
        market_batch_ingest(instrument=feed.instrument, trades=[], book_samples=[summary], source=feed.source.slug)
        Feed.objects.filter(pk=feed.pk).update(last_book_at=timezone.now())
    return True



# --------------------------------------------------------------------------- stream batches


@dataclass
class FeedBatch:
    """What the collector gathered for one feed since the last flush (raw ccxt structures)."""

    feed_id: int
    trades: list[dict] = field(default_factory=list)
    books: list[dict] = field(default_factory=list)
    liquidations: list[dict] = field(default_factory=list)
    messages: int = 0
    first_received_ms: int | None = None
    last_received_ms: int | None = None
    out_of_order: int = 0
    trade_gaps: int = 0
    sequence_gaps: int = 0
    stream_errors: int = 0
    rejected: int = 0  # frames the stream parser could not read at all
    reasons: dict = field(default_factory=dict)
    last_error: str = ""
    connected: bool | None = None
    advance_cursor: bool = True

    def __bool__(self) -> bool:
        return bool(self.trades or self.books or self.liquidations or self.messages or self.sequence_gaps
                    or self.stream_errors or self.rejected or self.connected is not None)


def stream_batch_ingest(*, batch: FeedBatch, feed: Feed, adapter: ExchangeAdapter, contract_size=None,
                        window_s: float | None = None, publish: bool = True) -> TradesResult:
    """Store one flush of a stream: parse (books -> summaries) first, then one transaction."""
    bands = tuple(settings.BOOK_DEPTH_BANDS)
    summaries = [s for s in (book_summary(b, contract_size=contract_size, bands=bands) for b in batch.books) if s]
    summaries.sort(key=lambda s: s.time_ms)
    received_at = ms_to_dt(batch.last_received_ms) if batch.last_received_ms else None
    counters: dict = {
        "messages": batch.messages, "out_of_order": batch.out_of_order, "trade_gaps": batch.trade_gaps,
        "sequence_gaps": batch.sequence_gaps, "stream_errors": batch.stream_errors, "rejected": batch.rejected,
    }
    counters = {k: v for k, v in counters.items() if v}
    if received_at is not None and batch.messages:
        counters["last_message_at"] = received_at
        if window_s:
            counters["message_rate"] = round(batch.messages / window_s, 2)
    if batch.connected is not None:
        counters["connected"] = batch.connected
    if batch.rejected:
        source_status_record(name=feed.source.slug, rejected=batch.rejected,
                             last_error=f"rejected messages: {batch.reasons}")
    if batch.last_error:
        counters["last_error"] = batch.last_error[:2000]
        counters["last_error_at"] = timezone.now()
    result = trades_ingest(feed=feed, adapter=adapter, trades=batch.trades, books=summaries,
                           advance_cursor=batch.advance_cursor, contract_size=contract_size, counters=counters,
                           received_at=received_at, publish=publish, sequence_gaps=batch.sequence_gaps)
    if batch.liquidations:
        liquidations_ingest(feed=feed, adapter=adapter, liquidations=batch.liquidations)
    return result


def feeds_disconnected_mark(*, feed_ids: Sequence[int]) -> None:
    Feed.objects.filter(pk__in=feed_ids).update(connected=False)


def feed_cursor_advance(*, feed_id: int, trade_id: int) -> None:
    """Move an id cursor forward (never back) once everything up to ``trade_id`` is known stored."""
    Feed.objects.filter(pk=feed_id).update(
        cursor_trade_id=Greatest(Coalesce(F("cursor_trade_id"), trade_id), trade_id))


def feed_cursor(*, feed_id: int) -> tuple[int | None, int | None]:
    row = Feed.objects.filter(pk=feed_id).values_list("cursor_trade_id", "cursor_time_ms").get()
    return row[0], row[1]
