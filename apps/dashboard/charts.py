"""Plotly figures for the pages, built server-side and serialised with plotly.io.to_json.

Each trace carries `meta` naming the bar field it plots, so the browser can merge live bar
updates into the same figure without knowing anything else about it.
"""

from __future__ import annotations

import functools
import json

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from pressureweb.lib.charts import BUY, SELL, THEMES, floats_of, panels_figure_json
from pressureweb.lib.times import iso_z

# Colour-blind safe (Okabe-Ito) and dashed differently, so the four bands stay apart in any palette or print.
BANDS = (("imbalance_0_1pct", "0.1%", "#E69F00", "solid"), ("imbalance_0_5pct", "0.5%", "#56B4E9", "dot"),
         ("imbalance_1pct", "1%", "#009E73", "dash"), ("imbalance_2pct", "2%", "#CC79A7", "dashdot"))
EPISODE_FILL = "rgba(239,83,80,0.10)"

# (row title, glossary slug) per subplot, in order; the page links each to its explanation.
PANELS = (
    ("Price", "candlestick"),
    ("Taker buy / sell volume", "taker-buy-sell-volume"),
    ("Taker sell ratio", "taker-sell-ratio"),
    ("Cumulative volume delta", "cumulative-volume-delta"),
    ("Book imbalance by depth band", "order-book-imbalance"),
    ("Bid-ask spread", "bid-ask-spread"),
)


def instrument_figure_empty(*, base: str, quote: str, theme: str = "dark") -> str:
    """The figure without data (the page fills it from its bars): the same for every request."""
    return _instrument_figure_cached(base, quote, theme)


def instrument_figure_with_shapes(*, base: str, quote: str, theme: str = "dark", shapes: list[dict]) -> str:
    """The empty figure with extra layout shapes (episodes) after its own, as JSON text."""
    if not shapes:
        return _instrument_figure_cached(base, quote, theme)
    figure = _instrument_figure_parsed(base, quote, theme)
    layout = {**figure["layout"], "shapes": [*figure["layout"].get("shapes", []), *shapes]}
    return json.dumps({**figure, "layout": layout})


@functools.lru_cache(maxsize=64)
def _instrument_figure_parsed(base: str, quote: str, theme: str) -> dict:
    return json.loads(_instrument_figure_cached(base, quote, theme))  # read only: callers copy what they change


@functools.lru_cache(maxsize=64)
def _instrument_figure_cached(base: str, quote: str, theme: str) -> str:
    return instrument_figure([], base=base, quote=quote, theme=theme)


def instrument_figure(rows: list[dict], *, base: str, quote: str, theme: str = "dark") -> str:
    t = THEMES.get(theme, THEMES["dark"])
    x = [r["bucket_start"] for r in rows]
    fig = make_subplots(
        rows=6, cols=1, shared_xaxes=True, vertical_spacing=0.035,
        row_heights=[0.34, 0.15, 0.12, 0.13, 0.14, 0.12],
        subplot_titles=[f"{title}" for title, _ in PANELS],
    )
    _price_and_volume_traces(fig, rows, x, base=base, quote=quote)
    _flow_and_book_traces(fig, rows, x, base=base)
    fig.add_hline(y=0.5, line_dash="dot", line_color="#888", row=3, col=1)
    fig.add_hline(y=0, line_dash="dot", line_color="#888", row=5, col=1)
    fig.update_yaxes(title_text=quote, row=1, col=1)
    fig.update_yaxes(title_text=base, row=2, col=1)
    fig.update_yaxes(title_text="ratio", tickformat=".0%", range=[0, 1], row=3, col=1)
    fig.update_yaxes(title_text=base, row=4, col=1)
    fig.update_yaxes(title_text="-1..+1", range=[-1, 1], row=5, col=1)
    fig.update_yaxes(title_text="bps", row=6, col=1)
    fig.update_xaxes(rangeslider_visible=False, gridcolor=t["grid"])
    fig.update_xaxes(title_text="Time (UTC)", row=6, col=1)
    return panels_figure_json(fig, theme=theme, height=980, margin={"l": 60, "r": 20, "t": 80, "b": 40},
                              legend_y=1.07)


def _price_and_volume_traces(fig: go.Figure, rows: list[dict], x: list, *, base: str, quote: str) -> None:
    """Rows 1 and 2: candles with the VWAP, taker buy volume above the axis and taker sell below."""
    fig.add_trace(go.Candlestick(
        x=x, open=floats_of(rows, "open"), high=floats_of(rows, "high"), low=floats_of(rows, "low"),
        close=floats_of(rows, "close"),
        name=f"Price ({quote})", increasing_line_color=BUY, decreasing_line_color=SELL,
        meta={"kind": "ohlc"}, hoverlabel={"namelength": -1},
    ), row=1, col=1)
    fig.add_trace(go.Scatter(
        x=x, y=floats_of(rows, "vwap"), name="VWAP", mode="lines", line={"width": 1, "color": "#ffb300"},
        meta={"y": "vwap"}, hovertemplate=f"VWAP %{{y:,.2f}} {quote}<extra></extra>",
    ), row=1, col=1)
    fig.add_trace(go.Bar(
        x=x, y=floats_of(rows, "taker_buy_base"), name="Taker buy", marker_color=BUY,
        meta={"y": "taker_buy_base"}, hovertemplate=f"taker buy %{{y:,.4f}} {base}<extra></extra>",
    ), row=2, col=1)
    fig.add_trace(go.Bar(
        x=x, y=floats_of(rows, "taker_sell_base", -1), name="Taker sell", marker_color=SELL,
        meta={"y": "taker_sell_base", "sign": -1},
        hovertemplate=f"taker sell %{{customdata:,.4f}} {base}<extra></extra>",
        customdata=floats_of(rows, "taker_sell_base"),
    ), row=2, col=1)


def _flow_and_book_traces(fig: go.Figure, rows: list[dict], x: list, *, base: str) -> None:
    """Rows 3 to 6: taker sell ratio, cumulative volume delta, book imbalance per depth band, spread."""
    fig.add_trace(go.Scatter(
        x=x, y=floats_of(rows, "taker_sell_ratio"), name="Taker sell ratio", mode="lines",
        line={"color": SELL, "width": 1.5}, meta={"y": "taker_sell_ratio"},
        hovertemplate="taker sell ratio %{y:.1%}<extra></extra>",
    ), row=3, col=1)
    fig.add_trace(go.Scatter(
        x=x, y=floats_of(rows, "cvd_base"), name="CVD", mode="lines", fill="tozeroy",
        line={"color": "#ab47bc", "width": 1.5}, meta={"y": "cvd_base"},
        hovertemplate=f"CVD %{{y:,.4f}} {base}<extra></extra>",
    ), row=4, col=1)
    for field, label, color, dash in BANDS:
        fig.add_trace(go.Scatter(
            x=x, y=floats_of(rows, field), name=f"Imbalance ±{label}", mode="lines",
            line={"color": color, "width": 1.5, "dash": dash},
            meta={"y": field}, hovertemplate=f"imbalance within {label}: %{{y:+.3f}}<extra></extra>",
        ), row=5, col=1)
    fig.add_trace(go.Scatter(
        x=x, y=floats_of(rows, "spread_bps"), name="Spread", mode="lines", line={"color": "#26c6da", "width": 1.5},
        meta={"y": "spread_bps"}, hovertemplate="spread %{y:.3f} bps<extra></extra>",
    ), row=6, col=1)


REGIME_COLORS = {"calm": "rgba(38,166,154,0.08)", "elevated": "rgba(255,179,0,0.08)", "high": "rgba(239,83,80,0.12)",
                 "extreme": "rgba(239,83,80,0.25)"}
COMPONENT_COLORS = ("#ef5350", "#ab47bc", "#42a5f5", "#26c6da", "#ffb300", "#8d6e63", "#66bb6a", "#ec407a",
                    "#7e57c2", "#29b6f6", "#d4e157", "#ff7043", "#78909c", "#5c6bc0", "#9ccc65", "#ffa726",
                    "#26a69a", "#bdbdbd")


def spi_figure_empty(*, components: tuple[str, ...], labels: dict[str, str], theme: str = "dark",
                     thresholds: tuple[float, float, float]) -> str:
    """The index figure without data, its regime bands at the instrument's thresholds (elevated, high, extreme)."""
    return _spi_figure_cached(components, tuple(sorted(labels.items())), theme,
                              tuple(round(t, 1) for t in thresholds))


@functools.lru_cache(maxsize=64)
def _spi_figure_cached(components: tuple[str, ...], labels: tuple, theme: str, thresholds: tuple) -> str:
    return spi_figure([], components=list(components), labels=dict(labels), theme=theme, thresholds=thresholds)


def spi_figure(rows: list[dict], *, components: list[str], labels: dict[str, str], theme: str = "dark",
               thresholds: tuple[float, float, float]) -> str:
    """The index over its regime bands (final bars a line, the forming bar a hollow marker), and below it each
    component's signed contribution, stacked (final bars)."""
    t = THEMES.get(theme, THEMES["dark"])
    x = [r["bucket_start"] for r in rows]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=[0.55, 0.45],
                        subplot_titles=["Selling Pressure Index (0-100)", "What drives it: contribution per component"])
    edges = (0.0, *thresholds, 100.0)
    for (name, color), lo, hi in zip(REGIME_COLORS.items(), edges[:-1], edges[1:], strict=True):
        fig.add_hrect(y0=lo, y1=hi, fillcolor=color, line_width=0, row=1, col=1,
                      annotation_text=name, annotation_position="top left", annotation_font_size=10)
    line = "#ffffff" if theme == "dark" else "#111111"
    fig.add_trace(go.Scatter(
        x=x, y=[r.get("spi") for r in rows], name="SPI (final bars)", mode="lines", line={"color": line, "width": 2},
        meta={"y": "spi", "final": True}, hovertemplate="SPI %{y:.1f}<extra></extra>",
    ), row=1, col=1)
    fig.add_trace(go.Scatter(
        x=x, y=[None for _ in rows], name="SPI (forming bar, provisional)", mode="markers",
        marker={"symbol": "circle-open", "size": 9, "color": line}, meta={"y": "spi", "forming": True},
        hovertemplate="SPI %{y:.1f} (forming, provisional)<extra></extra>",
    ), row=1, col=1)
    for i, name in enumerate(components):
        fig.add_trace(go.Bar(
            x=x, y=[(r.get("spi_contributions") or {}).get(name) for r in rows], name=labels.get(name, name),
            marker_color=COMPONENT_COLORS[i % len(COMPONENT_COLORS)], meta={"contrib": name, "final": True},
            hovertemplate=f"{labels.get(name, name)}: %{{y:+.3f}}<extra></extra>",
        ), row=2, col=1)
    fig.update_yaxes(range=[0, 100], title_text="SPI", row=1, col=1)
    fig.update_yaxes(title_text="logit share", row=2, col=1)
    fig.update_xaxes(title_text="Time (UTC)", row=2, col=1, gridcolor=t["grid"])
    fig.update_layout(
        template=t["template"], paper_bgcolor=t["paper"], plot_bgcolor=t["plot"], height=520, barmode="relative",
        margin={"l": 60, "r": 20, "t": 40, "b": 40}, hovermode="x unified", uirevision="keep-zoom",
        legend={"orientation": "h", "y": -0.18, "x": 0, "font": {"size": 10}},
    )
    return pio.to_json(fig, validate=False, pretty=False)


def episode_shapes(episodes, *, end_iso: str) -> list[dict]:
    """Shaded regions (Plotly layout shapes) for episodes, spanning every subplot."""
    return [{
        "type": "rect", "xref": "x", "yref": "paper", "x0": iso_z(e.start),
        "x1": iso_z(e.end) if e.end else end_iso, "y0": 0, "y1": 1,
        "fillcolor": EPISODE_FILL, "line": {"width": 0}, "layer": "below",
    } for e in episodes]


SIGNAL_STYLES = {  # name -> (label, colour); colour-blind safe (Okabe-Ito)
    "drop_risk": ("Drop-risk forecast", "#E69F00"),
    "spi": ("Selling Pressure Index", "#0072B2"),
    "baseline_volatility": ("Baseline: trailing 60-min volatility", "#009E73"),
    "baseline_return": ("Baseline: minus the trailing return", "#CC79A7"),
    "baseline_taker_sell_ratio": ("Baseline: taker sell ratio", "#999999"),
}


def roc_figure(curves: dict, signals: dict, *, theme: str = "dark") -> str:
    """ROC curves of the index, the forecast and the baselines (a diagonal = no better than chance)."""
    t = THEMES.get(theme, THEMES["dark"])
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance (AUC 0.5)",
                             line={"dash": "dot", "color": "#888", "width": 1}, hoverinfo="skip"))
    for name, (label, color) in SIGNAL_STYLES.items():
        points = (curves.get(name) or {}).get("roc")
        if not points:
            continue
        auc = (signals.get(name) or {}).get("auc")
        fig.add_trace(go.Scatter(
            x=[p[0] for p in points], y=[p[1] for p in points], mode="lines", line={"color": color, "width": 2},
            name=f"{label} (AUC {auc:.3f})" if auc is not None else label,
            hovertemplate="false positive rate %{x:.1%}<br>true positive rate %{y:.1%}<extra></extra>"))
    fig.update_layout(template=t["template"], paper_bgcolor=t["paper"], plot_bgcolor=t["plot"], height=420,
                      margin={"l": 60, "r": 20, "t": 30, "b": 50},
                      xaxis={"title": "False positive rate (share of calm bars flagged)", "range": [0, 1],
                             "tickformat": ".0%"},
                      yaxis={"title": "True positive rate (share of drops flagged)", "range": [0, 1],
                             "tickformat": ".0%"},
                      legend={"orientation": "h", "y": -0.25, "x": 0})
    return pio.to_json(fig, validate=False, pretty=False)


def reliability_figure(bins: list[dict], *, theme: str = "dark") -> str:
    """The forecast's reliability diagram: mean predicted probability against the observed frequency per bin."""
    t = THEMES.get(theme, THEMES["dark"])
    top = max([b["mean_predicted"] for b in bins] + [b["observed_frequency"] for b in bins] + [0.01]) * 1.1
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="perfect calibration",
                             line={"dash": "dot", "color": "#888", "width": 1}, hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=[b["mean_predicted"] for b in bins], y=[b["observed_frequency"] for b in bins], mode="lines+markers",
        name="Drop-risk forecast", line={"color": SIGNAL_STYLES["drop_risk"][1], "width": 2},
        customdata=[b.get("count") for b in bins],
        hovertemplate="predicted %{x:.2%}<br>observed %{y:.2%}<br>%{customdata:,} bars<extra></extra>"))
    fig.update_layout(template=t["template"], paper_bgcolor=t["paper"], plot_bgcolor=t["plot"], height=420,
                      margin={"l": 60, "r": 20, "t": 30, "b": 50},
                      xaxis={"title": "Predicted probability of the drop", "tickformat": ".1%", "range": [0, top]},
                      yaxis={"title": "Observed frequency", "tickformat": ".1%", "range": [0, top]},
                      legend={"orientation": "h", "y": -0.25, "x": 0})
    return pio.to_json(fig, validate=False, pretty=False)


def timeline_figure(rows: list[dict], *, quote: str, theme: str = "dark") -> str:
    """Price with the drops that followed (markers on the bars they followed), and below it the forecast and
    the index, so a reader sees what warned of what."""
    t = THEMES.get(theme, THEMES["dark"])
    x = [r["bucket_start"] for r in rows]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.55, 0.45],
                        specs=[[{}], [{"secondary_y": True}]],
                        subplot_titles=[f"Close ({quote}) and the bars a drop followed",
                                        "Drop-risk forecast (%) and Selling Pressure Index"])
    fig.add_trace(go.Scatter(x=x, y=[r["close"] for r in rows], mode="lines", name=f"close ({quote})",
                             line={"color": "#bbbbbb" if theme == "dark" else "#333333", "width": 1}), row=1, col=1)
    events = [r for r in rows if r["event"]]
    fig.add_trace(go.Scatter(x=[r["bucket_start"] for r in events], y=[r["close"] for r in events], mode="markers",
                             name="followed by a drop",
                             marker={"color": "#D55E00", "size": 6, "symbol": "triangle-down"}), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=[None if r["drop_risk"] is None else 100 * r["drop_risk"] for r in rows],
                             mode="lines", name="drop risk (%)", line={"color": SIGNAL_STYLES["drop_risk"][1]}),
                  row=2, col=1, secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=[r["spi"] for r in rows], mode="lines", name="SPI (0-100)",
                             line={"color": SIGNAL_STYLES["spi"][1], "width": 1}), row=2, col=1, secondary_y=True)
    fig.update_yaxes(title_text="%", row=2, col=1, secondary_y=False)
    fig.update_yaxes(title_text="SPI", range=[0, 100], row=2, col=1, secondary_y=True)
    fig.update_xaxes(title_text="Time (UTC)", row=2, col=1)
    fig.update_layout(template=t["template"], paper_bgcolor=t["paper"], plot_bgcolor=t["plot"], height=520,
                      margin={"l": 60, "r": 60, "t": 40, "b": 40}, hovermode="x unified",
                      legend={"orientation": "h", "y": -0.15, "x": 0})
    return pio.to_json(fig, validate=False, pretty=False)
