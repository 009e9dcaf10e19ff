from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.urls import reverse

from apps.flows import charts, selectors
from apps.flows.models import ASSET_CHAIN
from pressureweb.lib.ranges import PRESETS, chart_range_parse
from pressureweb.lib.times import iso_z
from pressureweb.page_payloads import render_with_payloads

PAGE_ASSETS = ("BTC", "USDT", "USDC")
TOP_EXCHANGES = 8


def _theme(request) -> str:
    return "light" if request.COOKIES.get("theme") == "light" else "dark"


def page(request):
    asset = request.GET.get("asset", "BTC").upper()
    asset_error = None
    if asset not in PAGE_ASSETS:
        asset_error = f"unknown asset {asset!r}; showing BTC"
        asset = "BTC"
    chain = ASSET_CHAIN[asset]
    params = request.GET.copy()
    params.setdefault("range", "7d")  # hourly bars: an hour-long range would show a single bar
    chart_range, range_error = chart_range_parse(params)
    end = chart_range.end
    start = selectors.floor_hour(chart_range.start)
    clipped = (end - start) / timedelta(hours=1) > settings.CHART_MAX_POINTS
    if clipped:
        start = selectors.floor_hour(end - timedelta(hours=settings.CHART_MAX_POINTS))

    data = selectors.flows_page_data(chain=chain, asset=asset, start=start, end=end, top=TOP_EXCHANGES,
                                     theme=_theme(request))
    exchanges = data["exchanges"]
    now_hour = iso_z(selectors.floor_hour(datetime.now(tz=UTC)))
    api = reverse("api:flows")
    return render_with_payloads(request, "flows/page.html", {
        "asset": asset, "chain": chain, "assets": PAGE_ASSETS, "asset_error": asset_error,
        "range": chart_range, "start": start, "end": end, "presets": list(PRESETS), "range_error": range_error,
        "clipped": clipped, "max_hours": settings.CHART_MAX_POINTS, "exchanges": exchanges, "panels": charts.PANELS,
        "totals": data["totals"], "latest": data["latest"], "pending": data["pending"], "summary": data["summary"],
        "has_data": data["latest"] is not None,
        "rows_script": data["rows_script"], "figure_script": data["figure_script"],
        "esplora_url": settings.ESPLORA_URL,
        "eth_rpc_set": bool(settings.ETH_RPC_URL),
        "min_confirmations": settings.BTC_MIN_CONFIRMATIONS,
        "z_window_days": settings.NETFLOW_Z_WINDOW_DAYS,
        "whale_n": settings.WHALE_TOP_N,
        "api": f"{api}?chain={chain}&asset={asset}&exchange=all&interval=1h",
        # Flow bars are pushed once per poll at most: "stale" after three polls without one.
        "flows_stale_ms": 3 * settings.FLOWS_POLL_SECONDS * 1000,
        "live_config": {
            "asset": asset, "chain": chain, "live": chart_range.live, "exchanges": exchanges,
            "rangeMs": int((end - start).total_seconds() * 1000), "nowHour": now_hour,
        },
    }, payloads=[data["rows_script"], data["figure_script"]])
