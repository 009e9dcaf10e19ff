import json
from datetime import timedelta

from django.conf import settings
from django.http import Http404
from django.shortcuts import render

from apps.dashboard import charts
from apps.dashboard.ranges import PRESETS, chart_range_parse
from apps.pressure.indicators.index import LABELS as SPI_LABELS
from apps.pressure.models import INTERVALS
from apps.pressure.selectors import (
    bar_latest_with_spi,
    bars_for_range,
    closes_recent,
    episodes_list,
    instrument_lookup,
    instruments_with_latest_bar,
    interval_for_points,
    spi_explain,
)
from apps.pressure.spi import weights as spi_weights
from apps.watchlists.selectors import watchlists_containing


def _theme(request) -> str:
    return "light" if request.COOKIES.get("theme") == "light" else "dark"


def overview(request):
    instruments = instruments_with_latest_bar()
    closes = closes_recent(instrument_ids=[inst.pk for inst, _ in instruments])
    rows = [
        {"instrument": inst, "bar": bar, "spark_id": f"spark-{inst.pk}",
         "closes": {"x": [c[0] for c in closes[inst.pk]], "y": [c[1] for c in closes[inst.pk]]}}
        for inst, bar in instruments
    ]
    return render(request, "dashboard/overview.html", {"rows": rows, "sparkline": charts.sparkline_figure()})


def instrument(request, exchange, market, symbol):
    inst = instrument_lookup(exchange=exchange, market=market, symbol=symbol)
    if inst is None:
        raise Http404("No such instrument")
    asked = request.GET.get("interval", "1m")
    asked = asked if asked in INTERVALS else "1m"
    chart_range, range_error = chart_range_parse(request.GET)
    interval = interval_for_points(instrument=inst, interval=asked, start=chart_range.start, end=chart_range.end,
                                   max_points=settings.CHART_MAX_POINTS)
    bars = bars_for_range(instrument=inst, interval=interval, start=chart_range.start, end=chart_range.end,
                          max_points=settings.CHART_MAX_POINTS)
    spi_bars = bars if interval == "1m" else bars_for_range(
        instrument=inst, interval="1m", start=max(chart_range.start, chart_range.end - timedelta(hours=24)),
        end=chart_range.end, max_points=settings.CHART_MAX_POINTS)
    episodes = list(episodes_list(instrument=inst, start=chart_range.start, end=chart_range.end)[:200])
    latest = bar_latest_with_spi(instrument=inst)
    # Figures carry layout and trace styles only: the page fills them from the bars it already embeds.
    figure = json.loads(charts.instrument_figure_empty(base=inst.base, quote=inst.quote, theme=_theme(request)))
    figure["layout"]["shapes"] = figure["layout"].get("shapes", []) + charts.episode_shapes(
        episodes, end_iso=chart_range.end.isoformat().replace("+00:00", "Z"))
    return render(request, "dashboard/instrument.html", {
        "instrument": inst, "interval": interval, "asked_interval": asked, "intervals": list(INTERVALS),
        "range": chart_range, "presets": list(PRESETS), "range_error": range_error,
        "figure": json.dumps(figure),
        "spi_figure": charts.spi_figure_empty(components=tuple(spi_weights()), labels=SPI_LABELS,
                                              theme=_theme(request)),
        "spi_bars": spi_bars if spi_bars is not bars else None,
        "spi_latest": latest, "spi_explain": spi_explain(latest), "episodes": episodes[:10],
        "spi_missing": [SPI_LABELS.get(m, m) for m in (latest.spi_missing if latest else [])],
        "panels": charts.PANELS, "bars": bars, "last_bar": bars[-1] if bars else None,
        "watched": request.user.is_authenticated and bool(watchlists_containing(user=request.user, instrument=inst)),
        "live_config": {
            "instrument": inst.pk, "interval": interval, "live": chart_range.live,
            "rangeMs": int((chart_range.end - chart_range.start).total_seconds() * 1000),
            "api": f"/api/v1/bars?exchange={inst.exchange.slug}&market={inst.market}&symbol={inst.symbol}"
                   f"&interval={interval}",
        },
    })


def episodes_page(request):
    episodes = list(episodes_list()[:300])
    return render(request, "dashboard/episodes.html", {"episodes": episodes})
