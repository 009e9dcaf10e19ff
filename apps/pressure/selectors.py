"""Reads of selling-pressure bars, shaped for the API, the charts and live pushes."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

import numpy as np
import orjson
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import OuterRef, Q, Subquery

from apps.markets.models import Instrument
from apps.pressure import bars as barmath
from apps.pressure import forecast as forecast_math
from apps.pressure.downsample import lttb_indices
from apps.pressure.indicators.index import REGIME_QUANTILES, REGIME_WINDOW_MS
from apps.pressure.models import INTERVALS, Episode, ForecastModel, PressureBar, RegimeCalibration, TrackRecord
from pressureweb.lib.times import iso_z, ms_to_dt, now_ms
from pressureweb.payload_cache import version_get, versions_get

logger = logging.getLogger(__name__)

# The public API contract: these names never change.
API_FIELDS = (
    "bucket_start", "open", "high", "low", "close", "vwap", "trades", "taker_buy_base", "taker_sell_base",
    "taker_buy_quote", "taker_sell_quote", "delta_base", "cvd_base", "taker_sell_ratio", "spread_bps",
    "imbalance_0_1pct", "imbalance_0_5pct", "imbalance_1pct", "imbalance_2pct",
)
_DECIMALS = ("open", "high", "low", "close", "vwap", "taker_buy_base", "taker_sell_base", "taker_buy_quote",
             "taker_sell_quote", "delta_base")


def decimal_plain(value: Decimal | None) -> str | None:
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
        row[name] = decimal_plain(getattr(bar, name))
    row["cvd_base"] = decimal_plain(cvd)
    for name in ("taker_sell_ratio", "spread_bps", "imbalance_0_1pct", "imbalance_0_5pct", "imbalance_1pct",
                 "imbalance_2pct"):
        row[name] = getattr(bar, name)
    row["book_samples"] = bar.book_samples
    row["final"] = bar.final
    row["spi"] = bar.spi
    row["regime"] = bar.regime or None
    row["spi_contributions"] = {k: v.get("contribution") for k, v in (bar.spi_components or {}).items()}
    return row


def bars_version_key(instrument_id: int) -> str:
    return f"bars:version:{instrument_id}"


def bars_version(instrument_id: int) -> int | None:
    """Bumped whenever a bar of the instrument is written: part of every cache key below.

    None when Redis is unreachable: readers then go to the database instead of failing.
    """
    return version_get(bars_version_key(instrument_id), what="bars")


def bars_versions(instrument_ids) -> dict[int, int] | None:
    """bars_version of many instruments in one round trip (None when Redis is unreachable)."""
    keys = {bars_version_key(i): i for i in instrument_ids}
    found = versions_get(list(keys), what="bars")
    return None if found is None else {keys[k]: v for k, v in found.items()}


# Bar fields read for a range, in the order bar_serialize writes them (values_list: no model instances).
_ROW_COLUMNS = ("bucket_start", "trades", *_DECIMALS, "taker_sell_ratio", "spread_bps", "imbalance_0_1pct",
                "imbalance_0_5pct", "imbalance_1pct", "imbalance_2pct", "book_samples", "spi", "regime",
                "spi_components", "final")
RANGE_CACHE_SECONDS = 300


def range_key(interval: str, start: datetime, end: datetime) -> tuple[int, int]:
    """[start, end) as ms rounded up to the interval's grid: the same bars, one key per bucket.

    Bars start on the interval's grid (epoch multiples of its length), so for a bar b,
    b >= start <=> b >= ceil(start) and b < end <=> b < ceil(end): the rounding never changes
    which bars a range holds, and every request within one bucket shares the cached rows.
    """
    size = int(INTERVALS[interval].total_seconds() * 1000)
    lo, hi = (int(t.timestamp() * 1000) for t in (start, end))
    return -(-lo // size) * size, -(-hi // size) * size


def bar_rows_query(*, instrument: Instrument, interval: str, start: datetime, end: datetime,
                    max_points: int | None) -> list[dict]:
    """The rows of bar_serialize (with CVD), built from plain column tuples; uncached (bars_for_range caches them,
    pages cache their script element of them)."""
    if connection.vendor == "postgresql":
        rows = _bar_rows_postgresql(instrument=instrument, interval=interval, start=start, end=end)
    else:
        rows = _bar_rows_orm(instrument=instrument, interval=interval, start=start, end=end)
    if max_points and len(rows) > max_points:
        x = np.array([datetime.fromisoformat(r["bucket_start"]).timestamp() for r in rows])
        y = np.array([float(r["close"]) if r["close"] is not None else np.nan for r in rows])
        rows = [rows[i] for i in lttb_indices(x, y, max_points)]
    return rows


def _plain_text(text: str | None) -> str | None:
    """decimal_plain for PostgreSQL's numeric text, which never has an exponent: '1.2300' -> '1.23'."""
    if text is None:
        return None
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _bar_rows_postgresql(*, instrument: Instrument, interval: str, start: datetime, end: datetime) -> list[dict]:
    """The same rows with the numbers read as text and the times formatted by PostgreSQL.

    A cache miss after every bar write pays for this; Decimal and timestamp loading made most of it.
    """
    floats = ("taker_sell_ratio", "spread_bps", "imbalance_0_1pct", "imbalance_0_5pct", "imbalance_1pct",
              "imbalance_2pct")
    sql = ("""SELECT to_char(bucket_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), trades, """
           + ", ".join(f"{name}::text" for name in _DECIMALS) + ", " + ", ".join(floats)
           + f", book_samples, spi, regime, spi_components::text, final FROM {PressureBar._meta.db_table} "
           "WHERE instrument_id = %s AND interval = %s AND bucket_start >= %s AND bucket_start < %s "
           "ORDER BY bucket_start")
    with connection.cursor() as cursor:
        cursor.execute(sql, [instrument.pk, interval, start, end])
        values = cursor.fetchall()
    plain, decimals, loads = _plain_text, _DECIMALS, orjson.loads
    running = Decimal(0)
    rows = []
    for v in values:
        row = {"bucket_start": v[0], "trades": v[1]}
        for i, name in enumerate(decimals, start=2):
            row[name] = plain(v[i])
        running += Decimal(v[11])  # delta_base
        row["cvd_base"] = decimal_plain(running)
        (row["taker_sell_ratio"], row["spread_bps"], row["imbalance_0_1pct"], row["imbalance_0_5pct"],
         row["imbalance_1pct"], row["imbalance_2pct"], row["book_samples"], row["spi"]) = v[12:20]
        row["regime"] = v[20] or None
        row["spi_contributions"] = {k: c.get("contribution") for k, c in (loads(v[21]) if v[21] else {}).items()}
        row["final"] = v[22]
        rows.append(row)
    return rows


def _bar_rows_orm(*, instrument: Instrument, interval: str, start: datetime, end: datetime) -> list[dict]:
    values = (PressureBar.objects.for_instrument(instrument).of_interval(interval).between(start, end)
              .chronological().values_list(*_ROW_COLUMNS))
    plain, decimals = decimal_plain, _DECIMALS
    running = Decimal(0)
    rows = []
    for v in values:
        row = {"bucket_start": v[0].isoformat().replace("+00:00", "Z"), "trades": v[1]}
        for i, name in enumerate(decimals, start=2):
            row[name] = plain(v[i])
        running += v[11]  # delta_base
        row["cvd_base"] = plain(running)
        (row["taker_sell_ratio"], row["spread_bps"], row["imbalance_0_1pct"], row["imbalance_0_5pct"],
         row["imbalance_1pct"], row["imbalance_2pct"], row["book_samples"], row["spi"]) = v[12:20]
        row["regime"] = v[20] or None
        row["spi_contributions"] = {k: c.get("contribution") for k, c in (v[21] or {}).items()}
        row["final"] = v[22]
        rows.append(row)
    return rows


def _cached(key: str | None, build):
    """build() through the cache under key (None: the cache is unreachable, so build without it)."""
    if key is None:
        return build()
    try:
        value = cache.get(key)
    except Exception:
        logger.warning("cache unreachable; reading bars from the database", exc_info=True)
        return build()
    if value is None:
        value = build()
        try:
            cache.set(key, value, timeout=RANGE_CACHE_SECONDS)
        except Exception:
            logger.warning("could not cache %s", key, exc_info=True)
    return value


def bars_for_range(*, instrument: Instrument, interval: str, start: datetime, end: datetime,
                   max_points: int | None = None) -> list[dict]:
    """Bars in [start, end), oldest first, with CVD summed from the first bar of the range.

    Cached until a bar of the instrument is written. With max_points, longer series are thinned
    with LTTB on the close (CVD is summed before thinning, so it stays exact).
    """
    version = bars_version(instrument.pk)
    # Keyed by the exact range (the API's ranges are explicit); pages cache theirs per range bucket (range_key).
    key = None if version is None else \
        f"bars:{instrument.pk}:{interval}:{version}:{start.timestamp():.3f}:{end.timestamp():.3f}:{max_points}"
    return _cached(key, lambda: bar_rows_query(instrument=instrument, interval=interval, start=start, end=end,
                                                max_points=max_points))


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


def latest_bars(*, instrument_ids, interval: str = "1m", with_index: bool = False) -> dict[int, PressureBar]:
    """The newest bar of each instrument, in two indexed queries; with_index: the newest final bar with an index."""
    latest = PressureBar.objects.filter(instrument=OuterRef("pk"), interval=interval).order_by("-bucket_start")
    if with_index:
        latest = latest.filter(final=True).exclude(spi=None)
    bar_ids = (Instrument.objects.filter(pk__in=instrument_ids)
               .annotate(bar_id=Subquery(latest.values("pk")[:1])).values_list("bar_id", flat=True))
    return {bar.instrument_id: bar for bar in PressureBar.objects.filter(pk__in=[b for b in bar_ids if b])}


def instruments_active() -> list[Instrument]:
    return list(Instrument.objects.active().with_exchange())


def instruments_with_latest_bar(*, interval: str = "1m") -> list[tuple[Instrument, PressureBar | None]]:
    instruments = instruments_active()
    bars = latest_bars(instrument_ids=[i.pk for i in instruments], interval=interval)
    return [(i, bars.get(i.pk)) for i in instruments]


def bars_due_final_cutoffs(clock_ms: int) -> dict[str, datetime]:
    """Per interval, the latest bar start that is due to be final at `clock_ms`: its bucket ended a grace ago."""
    clock = clock_ms - settings.BAR_FINAL_GRACE_MS
    return {interval: ms_to_dt(clock - size) for interval, size in barmath.INTERVAL_MS.items()}


def bars_due_final(*, instrument: Instrument | None = None, clock_ms: int | None = None) -> Q:
    """Bars not final yet but due, as a filter.

    With `clock_ms` (the newest event time a batch brought: the feed's own clock) a bar is due once that
    clock passed its end by the grace: a feed catching up never finalises a minute it has not delivered.
    Without it (nothing arrives), a bar is due once the wall clock passed its end by the grace and the bar
    has not changed for BAR_FINAL_QUIET_MS: a quiet market's last bar still becomes final.
    """
    quiet = clock_ms is None
    due = Q()
    for interval, cutoff in bars_due_final_cutoffs(now_ms() if quiet else clock_ms).items():
        due |= Q(interval=interval, bucket_start__lte=cutoff)
    found = Q(final=False) & due
    if quiet:
        found &= Q(updated_at__lte=ms_to_dt(now_ms() - settings.BAR_FINAL_QUIET_MS))
    return found & Q(instrument=instrument) if instrument is not None else found


def instruments_with_due_bars() -> list[Instrument]:
    """Instruments with a bar due to be final although no batch arrived to make it so (a quiet market)."""
    ids = PressureBar.objects.filter(bars_due_final()).values_list("instrument_id", flat=True).distinct()
    return list(Instrument.objects.with_exchange().filter(pk__in=list(ids)))


def instruments_with_final_bars() -> list[tuple[Instrument, str]]:
    """(instrument, interval) of every active instrument and interval that has final bars."""
    pairs = set(PressureBar.objects.filter(final=True).values_list("instrument_id", "interval").distinct())
    instruments = {i.pk: i for i in Instrument.objects.active().with_exchange().filter(
        pk__in={pk for pk, _ in pairs})}
    return sorted(((instruments[pk], interval) for pk, interval in pairs if pk in instruments),
                  key=lambda p: (p[0].pk, p[1]))


def track_records(*, instrument: Instrument | None = None):
    """Stored track records (newest evaluations), with their instruments."""
    found = TrackRecord.objects.select_related("instrument__exchange").order_by(
        "instrument__exchange__slug", "instrument__symbol", "interval", "horizon_minutes")
    return found.filter(instrument=instrument) if instrument is not None else found


def instrument_lookup(*, exchange: str, market: str, symbol: str) -> Instrument | None:
    return (Instrument.objects.with_exchange()
            .filter(exchange__slug=exchange, market=market, symbol=symbol.upper()).first())


PRESSURE_FIELDS = ("bucket_start", "final", "spi", "regime", "drop_risk", "components", "missing")


def pressure_for_range(*, instrument: Instrument, start: datetime, end: datetime, interval: str = "1m") -> list[dict]:
    """The index per bar with each component's value, z and contribution; `final` false for the forming bar,
    whose values are provisional."""
    rows = (PressureBar.objects.for_instrument(instrument).of_interval(interval).between(start, end).chronological()
            .values_list("bucket_start", "final", "spi", "regime", "drop_risk", "spi_components", "spi_missing"))
    return [
        {"bucket_start": iso_z(ts), "final": final, "spi": spi, "regime": regime or None, "drop_risk": drop_risk,
         "components": {name: {"value": c.get("value"), "z": c.get("z"), "contribution": c.get("contribution")}
                        for name, c in (components or {}).items()},
         "missing": missing or []}
        for ts, final, spi, regime, drop_risk, components, missing in rows
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
                  end: datetime | None = None, interval: str | None = None):
    qs = Episode.objects.select_related("instrument__exchange")
    if instrument is not None:
        qs = qs.for_instrument(instrument)
    if interval is not None:
        qs = qs.filter(interval=interval)
    if start is not None and end is not None:
        qs = qs.overlapping(start, end)
    return qs


def episode_outcomes(*, instrument: Instrument, interval: str = "1m") -> dict[str, dict]:
    """How this instrument's ended episodes went, per source label (indicators.episodes.outcomes_by_source)."""
    from apps.pressure.indicators.episodes import outcomes_by_source

    rows = list(Episode.objects.filter(instrument=instrument, interval=interval, end__isnull=False)
                .values_list("start", "end", "drawdown", "source"))
    if not rows:
        return {}
    return outcomes_by_source([(end - start).total_seconds() / 60 for start, end, _, _ in rows],
                              [r[2] for r in rows], [r[3] for r in rows])


def episode_outlook(source: str, outcomes: dict[str, dict]) -> str | None:
    """"Deleveraging episodes here lasted a median 12 min with a 1.4% drawdown (90th percentile 31 min,
    3.2%), n = 23", said when such an episode starts; None without past episodes of that label."""
    found = outcomes.get(source)
    if not found:
        return None
    label = dict(Episode.Source.choices).get(source, source)
    text = (f"{label} episodes here lasted a median {found['duration_median']:.0f} min with a "
            f"{100 * found['drawdown_median']:.1f}% drawdown (90th percentile {found['duration_p90']:.0f} min, "
            f"{100 * found['drawdown_p90']:.1f}%), n = {found['count']}")
    if found["differs"] is False:
        text += "; they do not differ from this market's other episodes"
    elif found["differs"] is None:
        text += "; too few episodes yet to tell them apart from the others"
    return text


def episode_serialize(ep: Episode) -> dict:
    return {
        "exchange": ep.instrument.exchange.slug, "market": ep.instrument.market, "symbol": ep.instrument.symbol,
        "interval": ep.interval, "start": iso_z(ep.start), "confirmed_at": iso_z(ep.confirmed_at),
        "peak_time": iso_z(ep.peak_time), "peak_spi": ep.peak_spi, "end": iso_z(ep.end),
        "bars": ep.bars, "drawdown": ep.drawdown, "source": ep.source, "shares": ep.shares,
    }


def bar_latest_with_spi(*, instrument: Instrument, version: int | None = None,
                        interval: str = "1m") -> PressureBar | None:
    """The newest FINAL bar that has an SPI (the forming bar's index is provisional); cached until a bar of
    the instrument is written.

    Without an SPI in the newest bars the query walks the instrument's index backwards, which
    on a month of bars costs more than the rest of the page. ``version``: the instrument's bars_version
    when the caller has read it already (None: read it here).
    """
    version = bars_version(instrument.pk) if version is None else version
    key = None if version is None else f"bars:latest-spi:{instrument.pk}:{interval}:{version}"

    def build():
        bar = (PressureBar.objects.for_instrument(instrument).of_interval(interval).filter(final=True)
               .exclude(spi=None).order_by("-bucket_start").first())
        return bar if bar is not None else _NO_BAR

    found = _cached(key, build)
    return None if isinstance(found, str) else found


def _base_rate(instrument: Instrument, interval: str, version: str) -> float | None:
    """How often the forecast's drop followed a bar in its model's training history: "normal" drop risk."""
    if not version:
        return None
    return (ForecastModel.objects.filter(instrument=instrument, interval=interval, version=version)
            .values_list("base_rate", flat=True).first())


_REGIME_PERCENTILES = dict(zip(("elevated", "high", "extreme"), (round(100 * q) for q in REGIME_QUANTILES),
                               strict=True))


def regime_meaning(regime: str | None, calibration) -> str | None:
    """What a regime means on this instrument: "high: above 95% of the last 30 days (index >= 71.3)"."""
    if not regime or calibration is None:
        return None
    levels = dict(zip(("elevated", "high", "extreme"), calibration.thresholds, strict=True))
    if calibration.is_default:
        if regime == "calm":
            return f"calm: below {levels['elevated']:.1f}, the default elevated threshold (too little history " \
                   "here yet for this market's own percentiles)"
        return f"{regime}: index at or above {levels[regime]:.1f}, the default threshold (too little history here " \
               "yet for this market's own percentiles)"
    days = REGIME_WINDOW_MS // 86_400_000
    if regime == "calm":
        return (f"calm: below the {_REGIME_PERCENTILES['elevated']}th percentile of the last {days} days "
                f"(index < {levels['elevated']:.1f})")
    return (f"{regime}: above {_REGIME_PERCENTILES[regime]}% of the last {days} days' final values "
            f"(index >= {levels[regime]:.1f})")


def index_headline(*, instrument: Instrument, interval: str = "1m", version: int | None = None) -> dict | None:
    """The headline of an instrument's index: value, regime and its meaning, explanation, drop risk and bar
    time, all from the latest final bar (one object: the page and live updates show it together)."""
    bar = bar_latest_with_spi(instrument=instrument, version=version, interval=interval)
    if bar is None:
        return None
    calibration = RegimeCalibration.objects.filter(instrument=instrument, interval=interval,
                                                   day=_utc_day(bar.bucket_start)).first()
    return _headline(bar, interval, calibration, _base_rate(instrument, interval, bar.drop_risk_model))


def index_headlines(*, instrument_ids: list[int], interval: str = "1m") -> dict[int, dict | None]:
    """index_headline of many instruments in four queries, whatever their number (the overview)."""
    bars = latest_bars(instrument_ids=instrument_ids, interval=interval, with_index=True)
    days = {_utc_day(bar.bucket_start) for bar in bars.values()}
    calibrations = {(c.instrument_id, c.day): c for c in RegimeCalibration.objects.filter(
        instrument_id__in=bars, interval=interval, day__in=days)}
    models = {bar.drop_risk_model for bar in bars.values() if bar.drop_risk_model}
    base_rates = {(pk, version): rate for pk, version, rate in ForecastModel.objects.filter(
        instrument_id__in=bars, interval=interval, version__in=models).values_list(
        "instrument_id", "version", "base_rate")}
    out: dict[int, dict | None] = dict.fromkeys(instrument_ids)
    for pk, bar in bars.items():
        out[pk] = _headline(bar, interval, calibrations.get((pk, _utc_day(bar.bucket_start))),
                            base_rates.get((pk, bar.drop_risk_model)) if bar.drop_risk_model else None)
    return out


def _utc_day(ts: datetime) -> datetime:
    """The start of the UTC day of a bar: the day its regime calibration is stored under."""
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def _headline(bar: PressureBar, interval: str, calibration: RegimeCalibration | None, normal: float | None) -> dict:
    return {
        "bucket_start": iso_z(bar.bucket_start), "interval": interval, "spi": bar.spi, "regime": bar.regime or None,
        "regime_meaning": regime_meaning(bar.regime, calibration), "explanation": spi_explain(bar),
        "drop_risk": bar.drop_risk, "drop_risk_normal": normal,
        "drop_risk_ratio": bar.drop_risk / normal if normal and bar.drop_risk is not None else None,
        "drop_risk_horizon_minutes": forecast_math.horizon_minutes_for(
            interval_ms=barmath.INTERVAL_MS[interval], configured=settings.DROP_RISK_HORIZON_MINUTES),
        "drop_risk_pct": settings.DROP_RISK_PCT,
        "missing": list(bar.spi_missing or []),
        "thresholds": calibration.thresholds if calibration else None,
    }


_NO_BAR = "no-bar"  # cached for "no such bar" (None means a cache miss)
