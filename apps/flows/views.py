from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.urls import reverse

from apps.flows import charts, selectors
from apps.flows.models import ALL_EXCHANGES, ASSET_CHAIN, STABLECOINS
from pressureweb.lib.ranges import PRESETS, ChartRange, chart_range_parse
from pressureweb.lib.times import iso_z
from pressureweb.page_payloads import render_with_payloads, script_element
from pressureweb.payload_cache import cached_while_rebuilt

PAGE_ASSETS = ("BTC", "USDT", "USDC")
TOP_EXCHANGES = 8


def _theme(request) -> str:
    return "light" if request.COOKIES.get("theme") == "light" else "dark"


def _samples(*, samples: list[dict], asset: str, start: datetime, end: datetime) -> list[dict]:
    """The recorded samples, each with the page asset its link shows and whether its rows are in this range."""
    out = []
    for sample in samples:
        shown = [a for a in PAGE_ASSETS if a in sample["assets"]]
        out.append({**sample, "page_asset": shown[0] if shown else None,
                    "in_range": asset in sample["assets"] and sample["end"] >= start and sample["start"] < end})
    return out


def _sample_range(*, asset: str, samples: list[dict]) -> ChartRange | None:
    """The hours of the asset's newest recorded sample, if it has one."""
    sample = next((s for s in samples if asset in s["assets"]), None)
    return None if sample is None else ChartRange("custom", sample["hour_start"], sample["hour_end"], live=False)


def _span(chart_range: ChartRange) -> tuple[datetime, datetime, bool]:
    """(start on the hour, end, clipped): at most CHART_MAX_POINTS hourly bars."""
    end = chart_range.end
    start = selectors.floor_hour(chart_range.start)
    clipped = (end - start) / timedelta(hours=1) > settings.CHART_MAX_POINTS
    if clipped:
        start = selectors.floor_hour(end - timedelta(hours=settings.CHART_MAX_POINTS))
    return start, end, clipped


def _page_data(*, chain: str, asset: str, start: datetime, end: datetime, top: int, theme: str) -> dict:
    """What the flows page shows, cached per (asset, hour range, theme, flows version), with its bars
    and figure as ready <script type="application/json"> elements (~1 MB of JSON is not encoded per view).

    The ``top`` exchanges by gross flow, their bars, ``all`` and the other stablecoins' ``all``
    bars, the range's totals, pending inflow and the summary. Bars start on the hour, so
    bucket_start < end <=> bucket_start < ceil_hour(end): every request within one hour shares
    the entry (and its current hour, where pending inflow is drawn). Prices are read when bars are
    refreshed, never here: no bars version is involved.
    """
    end = selectors.ceil_hour(end)
    version = selectors.flows_version()
    key = None if version is None else \
        f"flows:page:{chain}:{asset}:{int(start.timestamp())}:{int(end.timestamp())}:{top}:{theme}"

    def build() -> dict:
        exchanges = selectors.flow_exchanges_ranked(chain=chain, asset=asset, start=start, end=end, limit=top)
        shown = {*exchanges, ALL_EXCHANGES}
        rows = selectors.flow_bars(chain=chain, asset=asset, start=start, end=end, exchanges=shown)
        for stable in STABLECOINS:
            if stable != asset:
                rows += selectors.flow_bars(chain=ASSET_CHAIN[stable], asset=stable, start=start, end=end,
                                            exchange=ALL_EXCHANGES)
        pending = selectors.pending_inflows(chain=chain, asset=asset)
        everyone = [r for r in rows if r["asset"] == asset and r["exchange"] == ALL_EXCHANGES]
        figure = charts.flows_figure(rows, asset=asset, exchanges=exchanges, pending=pending,
                                     now_hour=iso_z(selectors.floor_hour(datetime.now(tz=UTC))),
                                     start=iso_z(start), end=iso_z(end), theme=theme)
        return {"exchanges": exchanges, "pending": pending, "latest": everyone[-1] if everyone else None,
                "totals": selectors.flow_totals(chain=chain, asset=asset, start=start, end=end),
                # Only the empty state shows it, and it counts every stored flow (most of a rebuild's time).
                "summary": None if everyone else selectors.flows_summary(),
                "samples": selectors.flow_samples(),
                "rows_script": script_element(rows, "flow-rows"),
                "figure_script": script_element(figure, "figure-data")}

    # Exact to the version: the flows page does not catch up when its socket opens, and flows are
    # written per block, not per second, so concurrent rebuilds are rare.
    return cached_while_rebuilt(key, version, build, stale_seconds=0)


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
    start, end, clipped = _span(chart_range)
    theme = _theme(request)
    data = _page_data(chain=chain, asset=asset, start=start, end=end, top=TOP_EXCHANGES, theme=theme)
    # With polling off, a page opened without a range shows the asset's recorded sample rather than an empty week.
    if (data["latest"] is None and "range" not in request.GET and not settings.FLOWS_ENABLED
            and (sample_range := _sample_range(asset=asset, samples=data["samples"]))):
        chart_range = sample_range
        start, end, clipped = _span(chart_range)
        data = _page_data(chain=chain, asset=asset, start=start, end=end, top=TOP_EXCHANGES, theme=theme)
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
        "samples": _samples(samples=data["samples"], asset=asset, start=start, end=end),
        "flows_enabled": settings.FLOWS_ENABLED,
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
