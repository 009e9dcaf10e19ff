"""The source registry and the rate-limit gate every request to an exchange passes.

Requests go through :func:`source_call`, which obeys and updates the source's rate-limit
state (:mod:`apps.exchanges.ratelimit`), so a ban seen by one worker stops all of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import ccxt
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.exchanges import ratelimit
from apps.exchanges.adapters import ADAPTERS, ExchangeAdapter, InstrumentSpec, adapter_for
from apps.exchanges.models import Feed, Source
from apps.markets.models import Exchange, Instrument
from apps.markets.providers import watched_instrument_ids
from apps.markets.services import instrument_ensure
from pressureweb.lib.http import retry_after_header
from pressureweb.lib.times import now_ms

logger = logging.getLogger(__name__)


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
    api_base = api_base or settings.EXCHANGE_API_BASE or _base_override.get("api_base")
    ws_base = ws_base or settings.EXCHANGE_WS_BASE or _base_override.get("ws_base")
    timeout_ms = settings.EXCHANGE_TIMEOUT_MS
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
    slugs = [s for s in (sources or settings.EXCHANGE_SOURCES) if s in ADAPTERS]
    bases = {b.upper() for b in settings.EXCHANGE_DEFAULT_BASES}
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



def feeds_for(*, capability: str | None = None, sources: Sequence[str] | None = None) -> list[int]:
    """Feed ids whose source adapter has the capability (e.g. 'has_funding')."""
    slugs = [s for s in (sources or settings.EXCHANGE_SOURCES) if s in ADAPTERS]
    if capability:
        slugs = [s for s in slugs if getattr(ADAPTERS[s], capability, False)]
    return list(Feed.objects.filter(source__slug__in=slugs, source__enabled=True, enabled=True)
                .values_list("pk", flat=True))




def sources_reset(*, slugs: Sequence[str] | None = None) -> int:
    """Forget rate-limit state (an operator's override after fixing the cause)."""
    qs = Source.objects.all() if not slugs else Source.objects.filter(Q(slug__in=slugs))
    return qs.update(state=ratelimit.OK, until_ms=None, failures=0, unreachable_streak=0)


# Quote currencies, the most specific suffix first, to split a symbol without a separator (SOLUSDT: SOL, USDT).
_QUOTES = ("FDUSD", "USDT", "USDC", "USD", "EUR", "BTC", "ETH")


def symbol_split(symbol: str) -> tuple[str, str] | None:
    """(base, quote) of BTCUSDT, BTC-USDT, BTC-USDT-SWAP or BTC/USDT; None when it cannot tell."""
    parts = [p for p in symbol.upper().replace("/", "-").split("-") if p]
    if len(parts) >= 2:
        return parts[0], parts[1]
    for quote in _QUOTES:
        if parts and parts[0].endswith(quote) and len(parts[0]) > len(quote):
            return parts[0][: -len(quote)], quote
    return None


def feed_add(*, slug: str, symbol: str, base: str | None = None, quote: str | None = None) -> Feed:
    """Collect one more instrument on a source: the collector and the pollers pick the feed up on their next
    registry sync (every 5 minutes, and when the collector starts). Re-adding enables it again."""
    if slug not in ADAPTERS:
        raise ValueError(f"unknown source {slug!r}; known: {', '.join(sorted(ADAPTERS))}")
    if not (base and quote):
        split = symbol_split(symbol)
        if split is None:
            raise ValueError(f"cannot tell base and quote of {symbol!r}: give --base and --quote")
        base, quote = base or split[0], quote or split[1]
    cls = ADAPTERS[slug]
    source = source_ensure(slug=slug)
    instrument = instrument_ensure(exchange_slug=cls.exchange, exchange_name=cls.exchange_name, market=cls.market,
                                   symbol=symbol, base=base, quote=quote, kind=cls.kind)
    feed = feed_ensure(source=source, instrument=instrument)
    if not feed.enabled:
        Feed.objects.filter(pk=feed.pk).update(enabled=True)
        feed.enabled = True
    return feed
