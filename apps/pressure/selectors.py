"""Reads of selling-pressure bars, shaped for the API, the charts and live pushes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from django.core.cache import cache
from django.db.models import OuterRef, Subquery

from apps.markets.models import Instrument
from apps.pressure.downsample import lttb_indices
from apps.pressure.models import INTERVALS, Episode, PressureBar

logger = logging.getLogger(__name__)

# The public API contract: these names never change.
API_FIELDS = (
    "bucket_start", "open", "high", "low", "close", "vwap", "trades", "taker_buy_base", "taker_sell_base",
    "taker_buy_quote", "taker_sell_quote", "delta_base", "cvd_base", "taker_sell_ratio", "spread_bps",
    "imbalance_0_1pct", "imbalance_0_5pct", "imbalance_1pct", "imbalance_2pct",
)
_DECIMALS = ("open", "high", "low", "close", "vwap", "taker_buy_base", "taker_sell_base", "taker_buy_quote",
             "taker_sell_quote", "delta_base")


def _plain(value: Decimal | None) -> str | None:
    """Exact decimal text without exponent or padding zeros: Decimal('1.2300') -> '1.23'."""
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def bar_serialize(bar: PressureBar, *, cvd: Decimal | None = None) -> dict:
    row = {"bucket_start": bar.bucket_start.isoformat().replace("+00:00", "Z"), "trades": bar.trades}
    for name in _DECIMALS:
        row[name] = _plain(getattr(bar, name))
    row["cvd_base"] = _plain(cvd)
    for name in ("taker_sell_ratio", "spread_bps", "imbalance_0_1pct", "imbalance_0_5pct", "imbalance_1pct",
                 "imbalance_2pct"):
        row[name] = getattr(bar, name)
    row["book_samples"] = bar.book_samples
    row["spi"] = bar.spi
    row["regime"] = bar.regime or None
    row["spi_contributions"] = {k: v.get("contribution") for k, v in (bar.spi_components or {}).items()}
    return row


def bars_version(instrument_id: int) -> int | None:
    """Bumped whenever a bar of the instrument is written: part of every cache key below.

    None when Redis is unreachable: readers then go to the database instead of failing.
    """
    try:
        return cache.get_or_set(f"bars:version:{instrument_id}", 1, timeout=None)
    except Exception:  # the cache is an optimisation, never a dependency
        logger.warning("cache unreachable; reading bars from the database", exc_info=True)
        return None


def bars_version_bump(instrument_id: int) -> None:
    key = f"bars:version:{instrument_id}"
    try:
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 2, timeout=None)
    except Exception:
        # Cached ranges expire on their own within their TTL; the write itself has succeeded.
        logger.warning("could not invalidate cached bars of instrument %s", instrument_id, exc_info=True)


def bars_for_range(*, instrument: Instrument, interval: str, start: datetime, end: datetime,
                   max_points: int | None = None) -> list[dict]:
    """Bars in [start, end), oldest first, with CVD summed from the first bar of the range.

    Cached until a bar of the instrument is written. With max_points, longer series are thinned
    with LTTB on the close (CVD is summed before thinning, so it stays exact).
    """
    version = bars_version(instrument.pk)
    key = f"bars:{instrument.pk}:{interval}:{version}:{start.timestamp():.3f}:{end.timestamp():.3f}:{max_points}"
    rows = cache.get(key) if version is not None else None
    if rows is not None:
        return rows
    bars = PressureBar.objects.for_instrument(instrument).of_interval(interval).between(start, end).chronological()
    running = Decimal(0)
    rows = []
    for bar in bars:
        running += bar.delta_base
        rows.append(bar_serialize(bar, cvd=running))
    if max_points and len(rows) > max_points:
        x = np.array([datetime.fromisoformat(r["bucket_start"]).timestamp() for r in rows])
        y = np.array([float(r["close"]) if r["close"] is not None else np.nan for r in rows])
        rows = [rows[i] for i in lttb_indices(x, y, max_points)]
    if version is not None:
        cache.set(key, rows, timeout=300)
    return rows


def bars_count(*, instrument: Instrument, interval: str, start: datetime, end: datetime) -> int:
    return PressureBar.objects.for_instrument(instrument).of_interval(interval).between(start, end).count()


def interval_for_points(*, instrument: Instrument, interval: str, start: datetime, end: datetime,
                        max_points: int) -> str:
    """Downsample long ranges by moving to a coarser interval, so no trace exceeds max_points."""
    order = list(INTERVALS)
    for candidate in order[order.index(interval):]:
        if (end - start) / INTERVALS[candidate] <= max_points:
            return candidate
    return order[-1]


def latest_bars(*, instrument_ids, interval: str = "1m") -> dict[int, PressureBar]:
    """The newest bar of each instrument, in two indexed queries."""
    latest = PressureBar.objects.filter(instrument=OuterRef("pk"), interval=interval).order_by("-bucket_start")
    bar_ids = (Instrument.objects.filter(pk__in=instrument_ids)
               .annotate(bar_id=Subquery(latest.values("pk")[:1])).values_list("bar_id", flat=True))
    return {bar.instrument_id: bar for bar in PressureBar.objects.filter(pk__in=[b for b in bar_ids if b])}


def instruments_with_latest_bar(*, interval: str = "1m") -> list[tuple[Instrument, PressureBar | None]]:
    instruments = list(Instrument.objects.active().with_exchange())
    bars = latest_bars(instrument_ids=[i.pk for i in instruments], interval=interval)
    return [(i, bars.get(i.pk)) for i in instruments]


def closes_recent(*, instrument_ids, interval: str = "1m", limit: int = 60) -> dict[int, list[tuple[str, float]]]:
    """The last `limit` closes of each instrument, in one query (sparklines)."""
    since = datetime.now(tz=UTC) - INTERVALS[interval] * limit
    out: dict[int, list[tuple[str, float]]] = {i: [] for i in instrument_ids}
    rows = (PressureBar.objects.filter(instrument_id__in=instrument_ids, interval=interval, bucket_start__gte=since)
            .exclude(close=None).order_by("bucket_start").values_list("instrument_id", "bucket_start", "close"))
    for instrument_id, ts, close in rows:
        out[instrument_id].append((ts.isoformat().replace("+00:00", "Z"), float(close)))
    return out


def instrument_lookup(*, exchange: str, market: str, symbol: str) -> Instrument | None:
    return (Instrument.objects.with_exchange()
            .filter(exchange__slug=exchange, market=market, symbol=symbol.upper()).first())


PRESSURE_FIELDS = ("bucket_start", "spi", "regime", "components", "missing")


def pressure_for_range(*, instrument: Instrument, start: datetime, end: datetime) -> list[dict]:
    """SPI per 1m bar with each component's value, z and contribution."""
    rows = (PressureBar.objects.for_instrument(instrument).of_interval("1m").between(start, end).chronological()
            .values_list("bucket_start", "spi", "regime", "spi_components", "spi_missing"))
    return [
        {"bucket_start": ts.isoformat().replace("+00:00", "Z"), "spi": spi, "regime": regime or None,
         "components": {name: {"value": c.get("value"), "z": c.get("z"), "contribution": c.get("contribution")}
                        for name, c in (components or {}).items()},
         "missing": missing or []}
        for ts, spi, regime, components, missing in rows
    ]


def spi_explain(bar: PressureBar | None, *, top: int = 3) -> str | None:
    """"SPI 78 (high): 45% taker selling, 30% long liquidations, 25% exchange inflow"."""
    if bar is None or bar.spi is None:
        return None
    from apps.pressure.indicators.index import LABELS

    positive = sorted(((v["contribution"], k) for k, v in (bar.spi_components or {}).items()
                       if v.get("contribution") and v["contribution"] > 0), reverse=True)
    total = sum(c for c, _ in positive)
    parts = [f"{round(100 * c / total)}% {LABELS.get(k, k)}" for c, k in positive[:top]] if total else []
    return f"SPI {bar.spi:.0f} ({bar.regime})" + (": " + ", ".join(parts) if parts else "")


def episodes_list(*, instrument: Instrument | None = None, start: datetime | None = None,
                  end: datetime | None = None):
    qs = Episode.objects.select_related("instrument__exchange")
    if instrument is not None:
        qs = qs.for_instrument(instrument)
    if start is not None and end is not None:
        qs = qs.overlapping(start, end)
    return qs


def episode_serialize(ep: Episode) -> dict:
    iso = lambda dt: dt.isoformat().replace("+00:00", "Z") if dt else None  # noqa: E731
    return {
        "exchange": ep.instrument.exchange.slug, "market": ep.instrument.market, "symbol": ep.instrument.symbol,
        "start": iso(ep.start), "peak_time": iso(ep.peak_time), "peak_spi": ep.peak_spi, "end": iso(ep.end),
        "bars": ep.bars, "drawdown": ep.drawdown, "source": ep.source, "shares": ep.shares,
    }


def bar_latest_with_spi(*, instrument: Instrument) -> PressureBar | None:
    return (PressureBar.objects.for_instrument(instrument).of_interval("1m").exclude(spi=None)
            .order_by("-bucket_start").first())
