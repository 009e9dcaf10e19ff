"""Derivatives context from exchanges over REST: funding, open interest, taker statistics,
liquidations, Deribit's DVOL and ATM implied volatility, stored by apps.derivatives."""

from __future__ import annotations

import logging

import ccxt
from django.db.models import F, Max

from apps.derivatives import services as derivatives
from apps.derivatives.models import FundingRate, OpenInterest, TakerRatio, VolIndex
from apps.exchanges.adapters import ExchangeAdapter
from apps.exchanges.models import Feed
from apps.exchanges.services.sources import adapter_get, source_call, source_ensure, spec_of

logger = logging.getLogger(__name__)


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
