"""The /flows/ figure, built server-side and serialised with plotly.io.to_json.

Each trace carries ``meta``: ``series`` ("ASSET|exchange") and ``y`` (the bar field it plots), or
``sum`` (several series added up), so the page can merge live bar updates into the same figure.
"""

from __future__ import annotations

import functools
import json

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from apps.flows.models import ALL_EXCHANGES
from pressureweb.lib.charts import BUY, SELL, THEMES, floats_of, panels_figure_json

# (row title, glossary slug) per subplot, in order; the page links each to its explanation.
PANELS = (
    ("Exchange netflow (inflow - outflow) and price", "exchange-netflow"),
    ("Exchange reserve", "exchange-reserve"),
    ("Exchange whale ratio", "exchange-whale-ratio"),
    ("Netflow z-score", "netflow-z-score"),
    ("Stablecoin netflow (USDT + USDC, all exchanges)", "stablecoin-netflow"),
)
PALETTE = ("#42a5f5", "#ffb300", "#ab47bc", "#26c6da", "#8d6e63", "#d4e157", "#ec407a", "#78909c", "#5c6bc0",
           "#9ccc65")
STABLE_SERIES = ("USDT|all", "USDC|all")


def _series(rows: list[dict], asset: str, exchange: str) -> list[dict]:
    return [r for r in rows if r["asset"] == asset and r["exchange"] == exchange]


def _stable_sum(rows: list[dict]) -> tuple[list[str], list[float | None]]:
    totals: dict[str, float] = {}
    for r in rows:
        if f"{r['asset']}|{r['exchange']}" in STABLE_SERIES and r.get("netflow_usd") is not None:
            totals[r["bucket_start"]] = totals.get(r["bucket_start"], 0.0) + float(r["netflow_usd"])
    x = sorted(totals)
    return x, [totals[t] for t in x]


def flows_figure(rows: list[dict], *, asset: str, exchanges: list[str], pending: list[dict], now_hour: str,
                 start: str, end: str, theme: str = "dark") -> str:
    """flows_figure_plotly's figure, from a cached skeleton with this request's data filled in.

    Building the figure with plotly costs ~40 ms per request; its shape depends only on the asset,
    the exchanges shown, whether anything is pending, which panels are empty and the theme.
    """
    everyone = _series(rows, asset, ALL_EXCHANGES)
    sx, sy = _stable_sum(rows)
    reserve_empty = not any(r.get("reserve") is not None for r in everyone)
    figure = json.loads(_skeleton(asset, tuple(exchanges), bool(pending), reserve_empty, not sx, theme))
    traces = iter(figure["data"])
    for exchange in exchanges:
        series = _series(rows, asset, exchange)
        trace = next(traces)
        trace["x"], trace["y"] = [r["bucket_start"] for r in series], floats_of(series, "netflow")
    if pending:
        trace = next(traces)
        trace["x"], trace["y"] = [now_hour] * len(pending), [p["inflow_float"] for p in pending]
        trace["customdata"] = [p["exchange"] for p in pending]
    x_all = [r["bucket_start"] for r in everyone]
    for field in ("price_usd", "reserve", "whale_ratio", "netflow_z"):
        trace = next(traces)
        trace["x"], trace["y"] = x_all, floats_of(everyone, field)
    trace = next(traces)
    trace["x"], trace["y"] = sx, sy
    trace["marker"]["color"] = [BUY if (v or 0) >= 0 else SELL for v in sy]
    if not x_all and not sx:
        for name, axis in figure["layout"].items():
            if name.startswith("xaxis"):
                axis["range"] = [start, end]
    return json.dumps(figure, separators=(",", ":"))


@functools.lru_cache(maxsize=64)
def _skeleton(asset: str, exchanges: tuple[str, ...], has_pending: bool, reserve_empty: bool, stable_empty: bool,
              theme: str) -> str:
    """The figure without data: every trace, axis, line and note, as JSON text (parsed anew per use)."""
    # One row of all exchanges, so plotly sets no fixed x range (the caller sets it when there is no data).
    rows = [{"asset": asset, "exchange": ALL_EXCHANGES, "bucket_start": "2000-01-01T00:00:00Z",
             "reserve": None if reserve_empty else 0}]
    if not stable_empty:
        rows.append({"asset": "USDT", "exchange": ALL_EXCHANGES, "bucket_start": "2000-01-01T00:00:00Z",
                     "netflow_usd": 0})
    pending = [{"inflow_float": 0.0, "exchange": ""}] if has_pending else []
    figure = json.loads(flows_figure_plotly(rows, asset=asset, exchanges=list(exchanges), pending=pending,
                                            now_hour="", start="", end="", theme=theme))
    for trace in figure["data"]:
        for key in ("x", "y", "customdata"):
            if key in trace:
                trace[key] = []
        if isinstance(trace.get("marker", {}).get("color"), list):
            trace["marker"]["color"] = []
    return json.dumps(figure)


def flows_figure_plotly(rows: list[dict], *, asset: str, exchanges: list[str], pending: list[dict], now_hour: str,
                        start: str, end: str, theme: str = "dark") -> str:
    """Netflow bars per exchange with the price on a secondary axis, reserve, whale ratio, z-score
    and stablecoin netflow; pending (not yet final) inflow as hatched bars at the current hour."""
    t = THEMES.get(theme, THEMES["dark"])
    fig = make_subplots(
        rows=5, cols=1, shared_xaxes=True, vertical_spacing=0.045, row_heights=[0.34, 0.17, 0.14, 0.15, 0.2],
        subplot_titles=[title for title, _ in PANELS], specs=[[{"secondary_y": True}], [{}], [{}], [{}], [{}]],
    )
    _exchange_traces(fig, rows, asset=asset, exchanges=exchanges, pending=pending, now_hour=now_hour)
    everyone = _series(rows, asset, ALL_EXCHANGES)
    x_all = [r["bucket_start"] for r in everyone]
    _all_exchanges_traces(fig, everyone, x_all, asset=asset)
    sx, sy = _stable_sum(rows)
    fig.add_trace(go.Bar(
        x=sx, y=sy, name="Stablecoin netflow (USD)", marker_color=[BUY if (v or 0) >= 0 else SELL for v in sy],
        meta={"sum": list(STABLE_SERIES), "y": "netflow_usd", "note": "empty-stablecoin"},
        hovertemplate="stablecoin netflow %{y:+,.0f} USD<extra></extra>",
    ), row=5, col=1)
    _axes(fig, asset=asset, grid=t["grid"])
    if not x_all and not sx:
        fig.update_xaxes(range=[start, end])
    _empty_notes(fig, asset=asset, reserve_empty=not any(r.get("reserve") is not None for r in everyone),
                 stable_empty=not sx)
    fig.update_xaxes(title_text="Hour (UTC)", row=5, col=1)
    return panels_figure_json(fig, theme=theme, height=1100, margin={"l": 70, "r": 60, "t": 80, "b": 40},
                              legend_y=1.06)


def _exchange_traces(fig: go.Figure, rows: list[dict], *, asset: str, exchanges: list[str], pending: list[dict],
                     now_hour: str) -> None:
    """Row 1: netflow bars per exchange shown, and the pending inflow hatched at the current hour."""
    for i, exchange in enumerate(exchanges):
        series = _series(rows, asset, exchange)
        fig.add_trace(go.Bar(
            x=[r["bucket_start"] for r in series], y=floats_of(series, "netflow"), name=exchange,
            marker_color=PALETTE[i % len(PALETTE)], meta={"series": f"{asset}|{exchange}", "y": "netflow"},
            legendgroup=exchange, hovertemplate=f"{exchange} netflow %{{y:+,.4f}} {asset}<extra></extra>",
        ), row=1, col=1)
    if pending:
        fig.add_trace(go.Bar(
            x=[now_hour] * len(pending), y=[p["inflow_float"] for p in pending],
            name="Pending inflow (not final)", marker={"color": "rgba(0,0,0,0)", "line": {"color": BUY, "width": 1},
                                                       "pattern": {"shape": "/", "fgcolor": BUY}},
            customdata=[p["exchange"] for p in pending], meta={"pending": True},
            hovertemplate=f"pending inflow to %{{customdata}}: %{{y:,.4f}} {asset}<extra></extra>",
        ), row=1, col=1)


def _all_exchanges_traces(fig: go.Figure, everyone: list[dict], x_all: list, *, asset: str) -> None:
    """The all-exchanges lines: price (row 1, secondary axis), reserve, whale ratio and netflow z-score."""
    fig.add_trace(go.Scatter(
        x=x_all, y=floats_of(everyone, "price_usd"), name=f"{asset} price (USD, hourly close)", mode="lines",
        line={"color": "#e0e0e0", "width": 1.2, "dash": "dot"}, meta={"series": f"{asset}|all", "y": "price_usd"},
        hovertemplate="price %{y:,.2f} USD<extra></extra>", connectgaps=False,
    ), row=1, col=1, secondary_y=True)
    fig.add_trace(go.Scatter(
        x=x_all, y=floats_of(everyone, "reserve"), name="Reserve, all exchanges", mode="lines",
        line={"color": "#ffb300", "width": 1.5},
        meta={"series": f"{asset}|all", "y": "reserve", "note": "empty-reserve"},
        hovertemplate=f"reserve %{{y:,.2f}} {asset}<extra></extra>", connectgaps=True,
    ), row=2, col=1)
    for row, field, name, color, hover in (
            (3, "whale_ratio", "Whale ratio, all exchanges", "#ab47bc", "whale ratio %{y:.1%}"),
            (4, "netflow_z", "Netflow z-score, all exchanges", "#26c6da", "netflow z %{y:+.2f}")):
        fig.add_trace(go.Scatter(
            x=x_all, y=floats_of(everyone, field), name=name, mode="lines+markers",
            line={"color": color, "width": 1.5}, marker={"size": 5}, meta={"series": f"{asset}|all", "y": field},
            hovertemplate=f"{hover}<extra></extra>",
        ), row=row, col=1)


def _axes(fig: go.Figure, *, asset: str, grid: str) -> None:
    for y in (2, -2):
        fig.add_hline(y=y, line_dash="dot", line_color="#888", row=4, col=1)
    fig.add_hline(y=0, line_dash="dot", line_color="#888", row=1, col=1)
    fig.update_yaxes(title_text=f"{asset} (+ = inflow)", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text="USD", row=1, col=1, secondary_y=True, showgrid=False)
    fig.update_yaxes(title_text=asset, row=2, col=1)
    fig.update_yaxes(title_text="ratio", tickformat=".0%", range=[0, 1.05], row=3, col=1)
    fig.update_yaxes(title_text="z", row=4, col=1)
    fig.update_yaxes(title_text="USD (+ = inflow)", row=5, col=1)
    # Dates on every shared axis, even a panel without data (Plotly would guess a numeric axis there).
    fig.update_xaxes(gridcolor=grid, type="date")


def _empty_notes(fig: go.Figure, *, asset: str, reserve_empty: bool, stable_empty: bool) -> None:
    """Empty panels say why; the page removes a note once its trace has data (annotation name = trace meta)."""
    notes = {2: ("reserve", "No reserve snapshots in this range: the BTC poll records wallet balances hourly."
                 if asset == "BTC" else "Reserves are tracked for BTC only."),
             5: ("stablecoin", "No stablecoin flows in this range: set ETH_RPC_URL to scan USDT/USDC transfers.")}
    empty = {2: reserve_empty, 5: stable_empty}
    for row_no, (name, text) in notes.items():
        if empty[row_no]:
            # Row 1 has a secondary y axis, so row n (n > 1) plots on x<n> / y<n + 1>.
            fig.add_annotation(text=text, name=f"empty-{name}", xref=f"x{row_no} domain", yref=f"y{row_no + 1} domain",
                               x=0.5, y=0.5, showarrow=False, font={"color": "#8b949e"})
