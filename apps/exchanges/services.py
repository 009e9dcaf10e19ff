"""Writes for live exchange data: the source registry, polls over REST, and stream batches.

Every poll and every stream batch ends in :func:`apps.pressure.services.market_batch_ingest`,
the ingestion path all sources share. A feed's cursor moves in the same transaction as the
trades it covers, so a process killed at any point resumes exactly where its last commit
ended: no gap (the next fetch starts after the cursor) and no duplicate (trade ids are unique).

Requests go through :func:`source_call`, which obeys and updates the source's rate-limit
state (:mod:`apps.exchanges.ratelimit`), so a ban seen by one worker stops all of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import ccxt
from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from apps.derivatives import services as derivatives
from apps.derivatives.models import FundingRate, OpenInterest, TakerRatio, VolIndex
from apps.exchanges import ratelimit
from apps.exchanges.adapters import ADAPTERS, ExchangeAdapter, InstrumentSpec, adapter_for
from apps.exchanges.models import Feed, Source
from apps.exchanges.normalize import book_summary, trades_normalize
from apps.markets.models import Exchange, Instrument
from apps.markets.services import instrument_ensure, source_status_record
from apps.markets.validation import Validated
from apps.pressure.services import market_batch_ingest
from pressureweb.lib.http import retry_after_header

logger = logging.getLogger(__name__)

DEFAULT_SOURCES = ("binance-spot", "binance-usdm", "bybit-spot", "bybit-linear", "okx-spot", "okx-swap",
                   "coinbase-spot", "kraken-spot", "deribit-options")
MAX_PAGES = 20


def _setting(name: str, default):
    return getattr(settings, name, default)


def now_ms() -> int:
    return int(time.time() * 1000)


class SourceDeferred(Exception):
    """The source is rate-limited, banned or backing off: no request was sent."""

    def __init__(self, slug: str, wait_s: float, state: str):
        super().__init__(f"{slug} is {state}; next request in {wait_s:.1f} s")
        self.slug, self.wait_s, self.state = slug, wait_s, state

    def __reduce__(self):  # raised in the collector's writer process, re-raised in the collector
        return type(self), (self.slug, self.wait_s, self.state)


class SourceRequestFailed(Exception):
    """A request failed in a way worth retrying later (rate limit, ban, 5xx, timeout, network)."""

    def __init__(self, slug: str, outcome: str, retry_after: float | None, cause: BaseException):
        super().__init__(f"{slug}: {outcome}: {cause}")
        self.slug, self.outcome, self.retry_after = slug, outcome, retry_after
        self.cause = cause

    def __reduce__(self):
        return type(self), (self.slug, self.outcome, self.retry_after, self.cause)


# --------------------------------------------------------------------------- registry


_adapters: dict[tuple, ExchangeAdapter] = {}
_adapters_lock = threading.Lock()
_base_override: dict[str, str | None] = {}


def adapters_point_at(*, api_base: str | None, ws_base: str | None) -> None:
    """Send this process's requests to other base URLs (``collect --api-base``, used by tests)."""
    _base_override.update(api_base=api_base, ws_base=ws_base)


def adapter_get(slug: str, *, api_base: str | None = None, ws_base: str | None = None) -> ExchangeAdapter:
    """A per-process adapter (its ccxt instance caches markets), pointed at the configured URLs."""
    api_base = api_base or _setting("EXCHANGE_API_BASE", None) or _base_override.get("api_base")
    ws_base = ws_base or _setting("EXCHANGE_WS_BASE", None) or _base_override.get("ws_base")
    timeout_ms = int(_setting("EXCHANGE_TIMEOUT_MS", 10_000))
    key = (slug, api_base, ws_base, timeout_ms, threading.get_ident())
    with _adapters_lock:
        if key not in _adapters:
            _adapters[key] = adapter_for(slug, api_base=api_base, ws_base=ws_base, timeout_ms=timeout_ms)
        return _adapters[key]


def source_ensure(*, slug: str) -> Source:
    cls = ADAPTERS[slug]
    exchange, _ = Exchange.objects.get_or_create(slug=cls.exchange, defaults={"name": cls.exchange_name})
    source, _ = Source.objects.get_or_create(slug=slug, defaults={"exchange": exchange, "market": cls.market})
    return source


def feed_ensure(*, source: Source, instrument: Instrument) -> Feed:
    feed, _ = Feed.objects.get_or_create(instrument=instrument, defaults={"source": source})
    return feed


def registry_sync(*, sources: Sequence[str] | None = None) -> list[Feed]:
    """Make sure every enabled source has its feeds: the defaults (BTC and ETH on each market) plus
    every instrument on anyone's watchlist that one of our sources can read. Returns the feeds."""
    from apps.watchlists.selectors import watched_instrument_ids

    slugs = [s for s in (sources or _setting("EXCHANGE_SOURCES", DEFAULT_SOURCES)) if s in ADAPTERS]
    bases = {b.upper() for b in _setting("EXCHANGE_DEFAULT_BASES", ("BTC", "ETH"))}
    by_market: dict[tuple[str, str], Source] = {}
    for slug in slugs:
        source = source_ensure(slug=slug)
        cls = ADAPTERS[slug]
        by_market[(cls.exchange, cls.market)] = source
        for spec in cls.defaults:
            if spec.base not in bases:
                continue
            instrument = instrument_ensure(
                exchange_slug=cls.exchange, exchange_name=cls.exchange_name, market=cls.market,
                symbol=spec.symbol, base=spec.base, quote=spec.quote, kind=cls.kind,
            )
            feed_ensure(source=source, instrument=instrument)
    watched = Instrument.objects.filter(pk__in=watched_instrument_ids(), exchange__is_replay=False).with_exchange()
    for instrument in watched:
        source = by_market.get((instrument.exchange.slug, instrument.market))
        if source is not None:
            feed_ensure(source=source, instrument=instrument)
    return list(
        Feed.objects.filter(source__slug__in=slugs, source__enabled=True, enabled=True)
        .select_related("source", "instrument__exchange")
    )


def spec_of(instrument: Instrument) -> InstrumentSpec:
    return InstrumentSpec(instrument.symbol, instrument.base, instrument.quote)


# --------------------------------------------------------------------------- rate-limit state


def source_outcome_record(*, source_id: int, outcome: str, retry_after: float | None = None,
                          error: str = "") -> Source:
    """Apply one request outcome to the source's state machine and counters (row-locked)."""
    with transaction.atomic():
        source = Source.objects.select_for_update().get(pk=source_id)
        health = ratelimit.transition(source.health, outcome, now_ms=now_ms(), retry_after=retry_after)
        source.state, source.until_ms = health.state, health.until_ms
        source.failures, source.unreachable_streak = health.failures, health.unreachable_streak
        source.requests += 1
        counter = {ratelimit.RATE_LIMIT: "rate_limited", ratelimit.BAN: "bans",
                   ratelimit.SERVER_ERROR: "server_errors", ratelimit.TIMEOUT: "timeouts",
                   ratelimit.NETWORK: "network_errors"}.get(outcome)
        if counter:
            setattr(source, counter, getattr(source, counter) + 1)
        if outcome == ratelimit.SUCCESS:
            source.last_success_at = timezone.now()
        else:
            source.last_error, source.last_error_at = error[:2000], timezone.now()
        source.save()
    if outcome not in (ratelimit.SUCCESS,):
        logger.warning("%s: %s (state %s, next request in %.1f s): %s", source.slug, outcome, source.state,
                       source.health.wait_ms(now_ms()) / 1000, error[:300])
    return source


def source_call(source: Source, adapter: ExchangeAdapter, fn: Callable, *args, **kwargs):
    """Call one adapter method under the source's rate-limit state machine.

    Raises :class:`SourceDeferred` without sending anything while the source must wait, and
    :class:`SourceRequestFailed` for failures worth retrying; other errors propagate.
    """
    fresh = Source.objects.only("state", "until_ms", "failures", "unreachable_streak").get(pk=source.pk)
    wait = fresh.health.wait_ms(now_ms())
    if wait > 0:
        raise SourceDeferred(source.slug, wait / 1000, fresh.state)
    rest = adapter.rest
    rest.last_status, rest.last_headers = None, None
    try:
        result = fn(*args, **kwargs)
    except ccxt.BaseError as exc:
        status, headers = adapter.last_response()
        outcome = ratelimit.classify(exc, status)
        retry_after = retry_after_header(headers)
        source_outcome_record(source_id=source.pk, outcome=outcome, retry_after=retry_after,
                              error=f"{type(exc).__name__}: {exc}")
        if outcome == ratelimit.CLIENT_ERROR:
            raise
        raise SourceRequestFailed(source.slug, outcome, retry_after, exc) from exc
    if rest.last_status is None:
        return result  # answered from ccxt's cache (markets): no request, nothing learnt
    if fresh.state != ratelimit.OK or fresh.failures:
        source_outcome_record(source_id=source.pk, outcome=ratelimit.SUCCESS)
    else:
        Source.objects.filter(pk=source.pk).update(requests=F("requests") + 1, last_success_at=timezone.now())
    return result


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


# --------------------------------------------------------------------------- derivatives polls


def _last_ms(model, **filters) -> int | None:
    return model.objects.filter(**filters).aggregate(m=Max("time_ms"))["m"]


def funding_poll(*, feed_id: int) -> int:
    """Settled funding history since the last stored one, plus the current (predicted) rate."""
    feed = Feed.objects.select_related("source", "instrument__exchange").get(pk=feed_id)
    adapter = adapter_get(feed.source.slug)
    if not adapter.has_funding:
        return 0
    spec = spec_of(feed.instrument)
    since = _last_ms(FundingRate, instrument=feed.instrument)
    points = list(source_call(feed.source, adapter, adapter.fetch_funding_rate_history, spec,
                              since_ms=since + 1 if since else None))
    current = source_call(feed.source, adapter, adapter.fetch_funding_rate, spec)
    # One predicted reading per minute: bars get a value without a row per poll.
    points.append(type(current)(current.time_ms - current.time_ms % 60_000, current.rate, current.next_funding_ms))
    return derivatives.funding_rates_store(instrument=feed.instrument, points=points).stored


def open_interest_poll(*, feed_id: int) -> int:
    feed = Feed.objects.select_related("source", "instrument__exchange").get(pk=feed_id)
    adapter = adapter_get(feed.source.slug)
    if not adapter.has_open_interest:
        return 0
    spec = spec_of(feed.instrument)
    points = []
    since = _last_ms(OpenInterest, instrument=feed.instrument)
    try:
        points += source_call(feed.source, adapter, adapter.fetch_open_interest_history, spec,
                              since_ms=since + 1 if since else None)
    except (ccxt.NotSupported, ccxt.BadRequest) as exc:
        logger.info("%s: no open interest history: %s", feed.source.slug, exc)
    current = source_call(feed.source, adapter, adapter.fetch_open_interest, spec)
    points.append(type(current)(current.time_ms - current.time_ms % 60_000, current.oi_base, current.oi_usd))
    return derivatives.open_interest_store(instrument=feed.instrument, points=points).stored


def taker_ratio_poll(*, feed_id: int, period: str = "5m") -> int:
    feed = Feed.objects.select_related("source", "instrument__exchange").get(pk=feed_id)
    adapter = adapter_get(feed.source.slug)
    if not adapter.has_taker_ratio:
        return 0
    since = _last_ms(TakerRatio, instrument=feed.instrument, period=period)
    points = source_call(feed.source, adapter, adapter.fetch_taker_ratio, spec_of(feed.instrument),
                         since_ms=since + 1 if since else None, period=period)
    return derivatives.taker_ratios_store(instrument=feed.instrument, points=points, period=period).stored


def liquidations_poll(*, feed_id: int) -> int:
    """REST liquidation history where offered; the main source is the collector's stream."""
    feed = Feed.objects.select_related("source", "instrument__exchange").get(pk=feed_id)
    adapter = adapter_get(feed.source.slug)
    try:
        points = source_call(feed.source, adapter, adapter.fetch_liquidations, spec_of(feed.instrument),
                             since_ms=None)
    except ccxt.NotSupported:
        return 0
    return derivatives.liquidations_store(instrument=feed.instrument, points=points, sampled=False).stored


def liquidations_ingest(*, feed: Feed, adapter: ExchangeAdapter, liquidations: list[dict], ex=None) -> int:
    """Store streamed liquidations (ccxt structures). Binance's stream is sampled (at most one
    forceOrder per symbol per second), so its sums are marked as lower bounds."""
    spec = spec_of(feed.instrument)
    ex = ex or adapter.rest
    points = [p for p in (adapter.liquidation_point(ex, spec, liq) for liq in liquidations) if p is not None]
    dropped = len(liquidations) - len(points)
    if dropped:
        logger.warning("%s %s: %d liquidations without side, time, price or size", feed.source.slug,
                       feed.instrument.symbol, dropped)
        Feed.objects.filter(pk=feed.pk).update(rejected=F("rejected") + dropped)
    return derivatives.liquidations_store(instrument=feed.instrument, points=points,
                                          sampled=adapter.exchange == "binance").stored


def dvol_poll(*, currency: str) -> int:
    source = source_ensure(slug="deribit-options")
    adapter = adapter_get(source.slug)
    since = _last_ms(VolIndex, currency=currency.upper())
    points = source_call(source, adapter, adapter.fetch_dvol, currency.upper(), since_ms=since + 1 if since else None)
    return derivatives.vol_index_store(currency=currency, points=points).stored


def option_iv_poll(*, currency: str) -> int:
    source = source_ensure(slug="deribit-options")
    adapter = adapter_get(source.slug)
    point = source_call(source, adapter, adapter.fetch_option_iv, currency.upper())
    if point is None:
        logger.warning("deribit: no option with mark IV for %s", currency)
        return 0
    return derivatives.option_iv_store(currency=currency, point=point).stored


def feeds_for(*, capability: str | None = None, sources: Sequence[str] | None = None) -> list[int]:
    """Feed ids whose source adapter has the capability (e.g. 'has_funding')."""
    slugs = [s for s in (sources or _setting("EXCHANGE_SOURCES", DEFAULT_SOURCES)) if s in ADAPTERS]
    if capability:
        slugs = [s for s in slugs if getattr(ADAPTERS[s], capability, False)]
    return list(Feed.objects.filter(source__slug__in=slugs, source__enabled=True, enabled=True)
                .values_list("pk", flat=True))


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
    received_at = datetime.fromtimestamp(batch.last_received_ms / 1000, tz=UTC) if batch.last_received_ms else None
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


def sources_reset(*, slugs: Sequence[str] | None = None) -> int:
    """Forget rate-limit state (an operator's override after fixing the cause)."""
    qs = Source.objects.all() if not slugs else Source.objects.filter(Q(slug__in=slugs))
    return qs.update(state=ratelimit.OK, until_ms=None, failures=0, unreachable_streak=0)
