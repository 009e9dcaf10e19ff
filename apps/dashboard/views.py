import logging
import math
import time
import zlib
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.http import Http404
from django.shortcuts import render
from django.template.loader import get_template
from django.utils.safestring import mark_safe

from apps.dashboard import charts
from apps.dashboard.payloads import bars_script
from apps.pressure.forecast import MIN_TRAIN_DAYS
from apps.pressure.indicators.index import LABELS as SPI_LABELS
from apps.pressure.models import INTERVALS
from apps.pressure.overview import GLANCE_MINUTES, overview_rows
from apps.pressure.selectors import (
    RANGE_CACHE_SECONDS,
    bars_version,
    bars_versions,
    episode_outcomes,
    episode_outlook,
    episodes_list,
    index_headline,
    instrument_lookup,
    instruments_active,
    interval_for_points,
    range_key,
    track_records,
)
from apps.pressure.services.forecast import track_record_timeline
from apps.pressure.spi import weights as spi_weights
from apps.watchlists.selectors import watchlists_containing
from pressureweb.lib.charts import THEMES
from pressureweb.lib.ranges import PRESETS, chart_range_parse
from pressureweb.lib.times import iso_z
from pressureweb.page_payloads import render_with_payloads, script_element
from pressureweb.payload_cache import process_payloads

logger = logging.getLogger(__name__)


def _theme(request) -> str:
    return "light" if request.COOKIES.get("theme") == "light" else "dark"


def overview(request):
    instruments = instruments_active()
    return render(request, "dashboard/overview.html", {"rows_html": overview_rows_html(instruments),
                                                       "min_train_days": MIN_TRAIN_DAYS})


SPARK_BARS = GLANCE_MINUTES  # the sparkline's last hour of the 1m index


def _row_meta(inst) -> int:
    """What a row shows of the instrument itself: part of its cache key, so a rename shows at once."""
    # The row's link is made of the exchange slug, market and symbol, which are all here.
    return zlib.crc32(repr((inst.exchange.name, inst.exchange.slug, inst.exchange.is_replay, inst.market, inst.kind,
                            inst.symbol, inst.base, inst.quote)).encode())


def overview_rows_html(instruments) -> str:
    """The overview's table rows, each cached per (instrument, bars version, sparkline minute).

    A bar write bumps its instrument's version, so only that row is rebuilt; the sparkline window
    (the last hour) moves on the minute grid, so one key per minute gives exactly the same closes.
    Rows come from this process's memory, else from Redis, else they are rendered.
    """
    if not instruments:
        return ""
    versions = bars_versions(inst.pk for inst in instruments)
    now = datetime.now(tz=UTC)
    since_ms = range_key("1m", now - INTERVALS["1m"] * SPARK_BARS, now)[0]
    keys = {} if versions is None else {
        inst.pk: f"overview:row:{inst.pk}:{versions.get(inst.pk)}:{since_ms}:{_row_meta(inst)}" for inst in instruments}
    html = {pk: row for pk, key in keys.items() if (row := process_payloads.get(key, versions[pk])) is not None}
    wanted = [key for pk, key in keys.items() if pk not in html]
    try:
        found = cache.get_many(wanted) if wanted else {}
    except Exception:  # the cache is an optimisation, never a dependency
        logger.warning("cache unreachable; rendering the overview from the database", exc_info=True)
        found, keys = {}, {}
    for pk, key in keys.items():
        if key in found:
            html[pk] = found[key]
            process_payloads.put(key, versions[pk], found[key], built_at=time.time())
    missing = [inst for inst in instruments if inst.pk not in html]
    if missing:
        template = get_template("dashboard/_overview_row.html")
        fresh = {}
        since = datetime.fromtimestamp(since_ms / 1000, tz=UTC)
        for row in overview_rows(instruments=missing, since=since):
            pk = row.instrument.pk
            html[pk] = template.render({"row": row, "spark_id": f"spark-{pk}"})
            if pk in keys:
                fresh[keys[pk]] = html[pk]
                process_payloads.put(keys[pk], versions[pk], html[pk], built_at=time.time())
        if fresh:
            try:
                cache.set_many(fresh, timeout=RANGE_CACHE_SECONDS)
            except Exception:
                logger.warning("could not cache overview rows", exc_info=True)
    return mark_safe("".join(html[inst.pk] for inst in instruments))  # noqa: S308 - rendered by our template


def instrument(request, exchange, market, symbol):
    inst = instrument_lookup(exchange=exchange, market=market, symbol=symbol)
    if inst is None:
        raise Http404("No such instrument")
    asked = request.GET.get("interval", "1m")
    asked = asked if asked in INTERVALS else "1m"
    chart_range, range_error = chart_range_parse(request.GET)
    interval = interval_for_points(instrument=inst, interval=asked, start=chart_range.start, end=chart_range.end,
                                   max_points=settings.CHART_MAX_POINTS)
    version = bars_version(inst.pk)
    # One set of bars feeds the price panels and the index chart: the index is computed on every interval.
    bars = bars_script(element_id="bars-data", instrument=inst, interval=interval, start=chart_range.start,
                       end=chart_range.end, max_points=settings.CHART_MAX_POINTS, version=version)
    episodes = list(episodes_list(instrument=inst, start=chart_range.start, end=chart_range.end)
                    .filter(interval=interval)[:200])
    headline = index_headline(instrument=inst, interval=interval, version=version)
    ongoing = next((e for e in episodes if e.end is None), None)
    outlook = episode_outlook(ongoing.source, episode_outcomes(instrument=inst, interval=interval)) if ongoing else None
    # Figures carry layout and trace styles only: the page fills them from the bars it already embeds.
    theme = _theme(request)
    # The figures' JSON text goes into the page as a JSON string, encoded by orjson (json_script took ~2 ms a view).
    figure = script_element(charts.instrument_panels(
        base=inst.base, quote=inst.quote, theme=theme,
        shapes=charts.episode_shapes(episodes, end_iso=iso_z(chart_range.end))), "figure-data")
    spi_figure = script_element(_index_figure(theme=theme, thresholds=(headline or {}).get("thresholds")),
                                "spi-figure-data")
    return render_with_payloads(request, "dashboard/instrument.html", {
        "instrument": inst, "interval": interval, "asked_interval": asked, "intervals": list(INTERVALS),
        "range": chart_range, "presets": list(PRESETS), "range_error": range_error,
        "few_bars": INTERVALS[interval] * 3 > chart_range.end - chart_range.start,
        "figure": figure, "chart_panels": charts.instrument_panel_sizes(base=inst.base, quote=inst.quote, theme=theme),
        "spi_figure": spi_figure,
        "headline": headline, "episodes": episodes[:10], "ongoing": ongoing, "outlook": outlook,
        "spi_missing": [SPI_LABELS.get(m, m) for m in (headline["missing"] if headline else [])],
        "spi_min_periods": settings.SPI_MIN_PERIODS,
        "panels": charts.PANELS, "bars": bars,
        "watched": request.user.is_authenticated and bool(watchlists_containing(user=request.user, instrument=inst)),
        "live_config": {
            "instrument": inst.pk, "interval": interval, "live": chart_range.live,
            "rangeMs": int((chart_range.end - chart_range.start).total_seconds() * 1000),
            "rangeStart": iso_z(chart_range.start), "intervalMs": int(INTERVALS[interval].total_seconds() * 1000),
            "api": f"/api/v1/bars?exchange={inst.exchange.slug}&market={inst.market}&symbol={inst.symbol}"
                   f"&interval={interval}",
            "pressureApi": f"/api/v1/pressure?exchange={inst.exchange.slug}&market={inst.market}"
                           f"&symbol={inst.symbol}&interval={interval}",
        },
    }, payloads=[bars.element, figure, spi_figure])


def _index_figure(*, theme: str, thresholds: tuple[float, float, float] | None) -> str:
    """The index chart without data, its bands at the instrument's thresholds (the defaults until calibrated)."""
    return charts.spi_figure_empty(components=tuple(spi_weights()), labels=SPI_LABELS, theme=theme,
                                   thresholds=thresholds or settings.SPI_REGIME_THRESHOLDS)


def instrument_figures_warm() -> None:
    """Build the figures every instrument page shares, in both themes: a process's first Plotly build also loads
    Plotly's validators (~0.5 s), which the first visitor after a start would otherwise wait for."""
    for theme in THEMES:
        charts.instrument_panels(base="BTC", quote="USDT", theme=theme)
        _index_figure(theme=theme, thresholds=None)


def episodes_page(request):
    episodes = list(episodes_list()[:300])
    return render(request, "dashboard/episodes.html", {"episodes": episodes})


def track_record_page(request):
    """What the index, its regimes and the drop-risk forecast foresaw, per stored evaluation (evaluate_spi)."""
    records = list(track_records())
    chosen = next((r for r in records if str(r.pk) == request.GET.get("record")), None)
    if chosen is None:
        chosen = next((r for r in records if r.horizon_minutes == settings.DROP_RISK_HORIZON_MINUTES), None) or next(
            iter(records), None)
    context = {"records": records, "record": chosen, "min_train_days": MIN_TRAIN_DAYS,
               "drop_risk_alert": settings.DROP_RISK_ALERT}
    if chosen is not None:
        result, theme = chosen.result, _theme(request)
        curves = result.get("curves") or {}
        context.update({
            "result": result, "signal_rows": _signal_rows(result),
            "more_days": max(0, math.ceil(MIN_TRAIN_DAYS + 1 - (result.get("history_days") or 0))),
            "roc_figure": charts.roc_figure(curves, result.get("signals") or {}, theme=theme),
            "reliability_figure": charts.reliability_figure((curves.get("drop_risk") or {}).get("reliability") or [],
                                                            theme=theme),
            "timeline_figure": charts.timeline_figure(track_record_timeline(
                instrument=chosen.instrument, interval=chosen.interval, horizon_minutes=chosen.horizon_minutes,
                drop_pct=chosen.drop_pct), quote=chosen.instrument.quote, theme=theme),
        })
    return render(request, "dashboard/track_record.html", context)


_SIGNAL_LABELS = {
    "drop_risk": "Drop-risk forecast", "spi": "Selling Pressure Index", "regime_elevated": "Regime elevated or above",
    "regime_high": "Regime high or above", "regime_extreme": "Regime extreme",
    "baseline_volatility": "Baseline: trailing 60-min volatility", "baseline_return": "Baseline: minus the return",
    "baseline_taker_sell_ratio": "Baseline: taker sell ratio",
}


def _signal_rows(result: dict) -> list[dict]:
    signals = result.get("signals") or {}
    return [{"name": name, "label": label, **signals[name]} for name, label in _SIGNAL_LABELS.items()
            if name in signals]
