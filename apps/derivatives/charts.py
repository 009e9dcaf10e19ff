"""Plotly figures for the derivatives panel, serialised with plotly.io.to_json.

Like apps/dashboard/charts.py, every trace carries ``meta`` naming the field of
:func:`apps.derivatives.selectors.derivatives_bars` it plots (``sign: -1`` for values drawn below
the axis), so static/js/derivatives.js can merge fresh rows into the same figure.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pressureweb.lib.charts import BUY, SELL, THEMES, floats_of, panels_figure_json

# (row title, glossary slug) per subplot, in order.
PANELS = (
    ("Open interest vs price (last, mark and index)", "open-interest"),
    ("Liquidations (shorts above, longs below)", "liquidation"),
    ("Funding rate", "funding-rate"),
    ("DVOL and ATM implied volatility", "dvol"),
)


def _exchange_prices_add(fig: go.Figure, rows: list[dict], *, x: list, quote: str) -> None:
    """The exchange's own prices where a source gives them (the recorded Bybit sample): what positions are valued
    and liquidated at, and the spot index it follows; hover shows the basis between them."""
    if not any(r.get("mark_price") is not None for r in rows):
        return
    fig.add_trace(go.Scatter(
        x=x, y=floats_of(rows, "mark_price"), name=f"Mark price ({quote})", mode="lines",
        line={"color": "#ef9a9a", "width": 1.5, "shape": "hv"}, meta={"y": "mark_price"},
        customdata=floats_of(rows, "basis_bps"),
        hovertemplate=f"mark %{{y:,.2f}} {quote}, basis %{{customdata:+.2f}} bps vs index<extra></extra>",
    ), row=1, col=1, secondary_y=True)
    fig.add_trace(go.Scatter(
        x=x, y=floats_of(rows, "index_price"), name=f"Index price ({quote})", mode="lines",
        line={"color": "#80cbc4", "width": 1, "dash": "dot", "shape": "hv"}, meta={"y": "index_price"},
        hovertemplate=f"index %{{y:,.2f}} {quote}<extra></extra>",
    ), row=1, col=1, secondary_y=True)


def derivatives_figure(rows: list[dict], *, base: str, quote: str, theme: str = "dark") -> str:
    t = THEMES.get(theme, THEMES["dark"])
    x = [r["bucket_start"] for r in rows]
    lower_bound = any(r.get("liq_lower_bound") for r in rows)
    fig = make_subplots(
        rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=[0.32, 0.24, 0.2, 0.24],
        subplot_titles=[title for title, _ in PANELS], specs=[[{"secondary_y": True}], [{}], [{}], [{}]],
    )
    fig.add_trace(go.Scatter(
        x=x, y=floats_of(rows, "oi_base"), name=f"Open interest ({base})", mode="lines",
        line={"color": "#ffb300", "width": 1.5}, meta={"y": "oi_base"},
        customdata=floats_of(rows, "oi_usd"),
        hovertemplate=f"OI %{{y:,.2f}} {base} (%{{customdata:,.0f}} {quote})<extra></extra>",
    ), row=1, col=1, secondary_y=False)
    fig.add_trace(go.Scatter(
        x=x, y=floats_of(rows, "close"), name=f"Price ({quote})", mode="lines", line={"color": "#90caf9", "width": 1},
        meta={"y": "close"}, hovertemplate=f"close %{{y:,.2f}} {quote}<extra></extra>",
    ), row=1, col=1, secondary_y=True)
    _exchange_prices_add(fig, rows, x=x, quote=quote)
    suffix = " (lower bound)" if lower_bound else ""
    fig.add_trace(go.Bar(
        x=x, y=floats_of(rows, "liq_short_usd"), name=f"Shorts liquidated{suffix}", marker_color=BUY,
        meta={"y": "liq_short_usd"}, hovertemplate=f"shorts liquidated %{{y:,.0f}} {quote}{suffix}<extra></extra>",
    ), row=2, col=1)
    fig.add_trace(go.Bar(
        x=x, y=floats_of(rows, "liq_long_usd", -1), name=f"Longs liquidated{suffix}", marker_color=SELL,
        meta={"y": "liq_long_usd", "sign": -1}, customdata=floats_of(rows, "liq_long_usd"),
        hovertemplate=f"longs liquidated %{{customdata:,.0f}} {quote}{suffix}<extra></extra>",
    ), row=2, col=1)
    fig.add_trace(go.Scatter(
        x=x, y=[None if v is None else v * 100 for v in floats_of(rows, "funding_rate")], name="Funding rate",
        mode="lines", line={"color": "#ab47bc", "width": 1.5, "shape": "hv"}, meta={"y": "funding_rate", "scale": 100},
        hovertemplate="funding %{y:.4f}% per interval<extra></extra>",
    ), row=3, col=1)
    fig.add_trace(go.Scatter(
        x=x, y=floats_of(rows, "dvol"), name="DVOL", mode="lines", line={"color": "#26c6da", "width": 1.5},
        meta={"y": "dvol"}, hovertemplate="DVOL %{y:.2f}%<extra></extra>",
    ), row=4, col=1)
    fig.add_trace(go.Scatter(
        x=x, y=floats_of(rows, "atm_iv"), name="ATM IV", mode="lines",
        line={"color": "#ef9a9a", "width": 1, "dash": "dot"}, meta={"y": "atm_iv"},
        hovertemplate="ATM IV %{y:.2f}%<extra></extra>",
    ), row=4, col=1)
    fig.add_hline(y=0, line_dash="dot", line_color="#888", row=2, col=1)
    fig.add_hline(y=0, line_dash="dot", line_color="#888", row=3, col=1)
    # Up to six significant digits with thousands separators (59,896 BTC, 65,137.8 USDT), never "59.896k".
    fig.update_yaxes(title_text=base, row=1, col=1, secondary_y=False, tickformat=",.6~r")
    fig.update_yaxes(title_text=quote, row=1, col=1, secondary_y=True, showgrid=False, tickformat=",.6~r")
    fig.update_yaxes(title_text=quote, row=2, col=1)
    fig.update_yaxes(title_text="% / interval", row=3, col=1)
    fig.update_yaxes(title_text="% (annualised)", row=4, col=1)
    fig.update_xaxes(gridcolor=t["grid"])
    fig.update_xaxes(title_text="Time (UTC)", row=4, col=1)
    return panels_figure_json(fig, theme=theme, height=760, margin={"l": 60, "r": 60, "t": 60, "b": 40},
                              legend_y=1.08)
