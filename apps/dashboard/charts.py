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

from pressureweb.lib.charts import BUY, SELL, THEMES
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


# Each panel is a figure of its own, so the page draws (and redraws live) only the panels near the screen, each in a
# short task of its own: (element id, plot height in px, time axis labelled). The top and bottom panels label it.
PANEL_LAYOUT = (("chart", 280, True), ("chart-volume", 120, False), ("chart-ratio", 96, False),
                ("chart-cvd", 104, False), ("chart-imbalance", 112, False), ("chart-spread", 96, True))
# The template's parts these traces use (the rest is for trace types and subplots the page has not).
_TEMPLATE_DATA = ("bar", "scatter")
_TEMPLATE_LAYOUT_UNUSED = ("polar", "ternary", "scene", "geo", "coloraxis", "colorscale")


def instrument_panels(*, base: str, quote: str, theme: str = "dark", shapes: list[dict] = ()) -> str:
    """The instrument's panels without data (the page fills them from its bars) as JSON text:
    {"template": the theme's template, shared by the panels, "panels": [{"id", "height", "figure"}, ...]},
    with extra layout shapes (episodes) after each panel's own."""
    if not shapes:
        return _instrument_panels_cached(base, quote, theme)
    parsed = _instrument_panels_parsed(base, quote, theme)
    panels = [{**panel, "figure": {**panel["figure"], "layout": {
        **panel["figure"]["layout"], "shapes": [*panel["figure"]["layout"].get("shapes", []), *shapes]}}}
        for panel in parsed["panels"]]
    return json.dumps({**parsed, "panels": panels})


def instrument_panel_sizes(*, base: str, quote: str, theme: str = "dark") -> list[dict]:
    """Each panel's element id and height, for the page to reserve the space before the panel is drawn."""
    return [{"id": p["id"], "height": p["height"]} for p in _instrument_panels_parsed(base, quote, theme)["panels"]]


@functools.lru_cache(maxsize=256)
def _instrument_panels_parsed(base: str, quote: str, theme: str) -> dict:
    return json.loads(_instrument_panels_cached(base, quote, theme))  # read only: callers copy what they change


# Plotly takes about 0.1 s to build the six panels, so they are built once per theme with these stand-ins for the
# instrument's base and quote, which are then written into the JSON text: a new instrument costs a string replace.
_BASE, _QUOTE = "__PW_BASE__", "__PW_QUOTE__"


@functools.lru_cache(maxsize=256)
def _instrument_panels_cached(base: str, quote: str, theme: str) -> str:
    text = _instrument_panels_themed(theme)
    return text.replace(_BASE, json.dumps(base)[1:-1]).replace(_QUOTE, json.dumps(quote)[1:-1])


@functools.cache
def _instrument_panels_themed(theme: str) -> str:
    return instrument_panels_build(base=_BASE, quote=_QUOTE, theme=theme)


def instrument_panels_build(*, base: str, quote: str, theme: str) -> str:
    """The panels of :func:`instrument_panels` (without episodes), built with Plotly."""
    t = THEMES.get(theme, THEMES["dark"])
    figs = [go.Figure() for _ in PANELS]
    _price_and_volume_traces(figs[0], figs[1], base=base, quote=quote)
    _flow_and_book_traces(*figs[2:], base=base)
    figs[2].add_hline(y=0.5, line_dash="dot", line_color="#888")
    figs[4].add_hline(y=0, line_dash="dot", line_color="#888")
    for fig, axis in zip(figs, ({"title_text": quote}, {"title_text": base},
                                {"title_text": "ratio", "tickformat": ".0%", "range": [0, 1]}, {"title_text": base},
                                {"title_text": "-1..+1", "range": [-1, 1]}, {"title_text": "bps"}), strict=True):
        fig.update_yaxes(**axis)
    panels, template = [], None
    for fig, (title, _), (element_id, plot_px, labelled) in zip(figs, PANELS, PANEL_LAYOUT, strict=True):
        several = len(fig.data) > 1
        # The title on top; a legend (panels of several traces) on a line of its own below it, above the plot, where
        # it covers no data on any screen.
        legend_px = 20 if several else 0
        top, bottom = 26 + legend_px, 52 if labelled else 8
        # Fixed margins (no automargin): every panel's plot starts at the same x, so the bars line up across them.
        fig.update_xaxes(rangeslider_visible=False, gridcolor=t["grid"], showticklabels=labelled,
                         title_text="Time (UTC)" if labelled else None, title_standoff=4, automargin=False)
        fig.update_yaxes(title_standoff=6, automargin=False)
        fig.update_layout(
            template=t["template"], paper_bgcolor=t["paper"], plot_bgcolor=t["plot"], height=top + plot_px + bottom,
            margin={"l": 72, "r": 16, "t": top, "b": bottom}, barmode="relative", hovermode="x unified",
            uirevision="keep-zoom", showlegend=several,
            # Small enough for the four depth bands to fit one line on a 390 px phone.
            legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1, "yanchor": "bottom", "font": {"size": 10}},
            annotations=[{"text": f"<b>{title}</b>", "font": {"size": 13}, "showarrow": False, "x": 0, "xref": "paper",
                          "xanchor": "left", "y": 1, "yref": "paper", "yanchor": "bottom", "yshift": legend_px}])
        figure = json.loads(pio.to_json(fig, validate=False, pretty=False))
        template = figure["layout"].pop("template")
        panels.append({"id": element_id, "height": top + plot_px + bottom, "figure": figure})
    template = {"data": {k: v for k, v in template["data"].items() if k in _TEMPLATE_DATA},
                "layout": {k: v for k, v in template["layout"].items() if k not in _TEMPLATE_LAYOUT_UNUSED}}
    return json.dumps({"template": template, "panels": panels})


def _price_and_volume_traces(price: go.Figure, volume: go.Figure, *, base: str, quote: str) -> None:
    """Candles with the VWAP; taker buy volume above the axis and taker sell below."""
    price.add_trace(go.Candlestick(
        name=f"Price ({quote})", increasing_line_color=BUY, decreasing_line_color=SELL,
        meta={"kind": "ohlc"}, hoverlabel={"namelength": -1},
    ))
    price.add_trace(go.Scatter(
        name="VWAP", mode="lines", line={"width": 1, "color": "#ffb300"},
        meta={"y": "vwap"}, hovertemplate=f"VWAP %{{y:,.2f}} {quote}<extra></extra>",
    ))
    volume.add_trace(go.Bar(
        name="Taker buy", marker_color=BUY,
        meta={"y": "taker_buy_base"}, hovertemplate=f"taker buy %{{y:,.4f}} {base}<extra></extra>",
    ))
    volume.add_trace(go.Bar(
        name="Taker sell", marker_color=SELL, meta={"y": "taker_sell_base", "sign": -1},
        hovertemplate=f"taker sell %{{customdata:,.4f}} {base}<extra></extra>", customdata=[],
    ))


def _flow_and_book_traces(ratio: go.Figure, cvd: go.Figure, book: go.Figure, spread: go.Figure, *, base: str) -> None:
    """Taker sell ratio, cumulative volume delta, book imbalance per depth band, spread."""
    ratio.add_trace(go.Scatter(
        name="Taker sell ratio", mode="lines", line={"color": SELL, "width": 1.5}, meta={"y": "taker_sell_ratio"},
        hovertemplate="taker sell ratio %{y:.1%}<extra></extra>",
    ))
    cvd.add_trace(go.Scatter(
        name="CVD", mode="lines", fill="tozeroy", line={"color": "#ab47bc", "width": 1.5}, meta={"y": "cvd_base"},
        hovertemplate=f"CVD %{{y:,.4f}} {base}<extra></extra>",
    ))
    for field, label, color, dash in BANDS:
        book.add_trace(go.Scatter(
            name=f"±{label}", mode="lines", line={"color": color, "width": 1.5, "dash": dash},
            meta={"y": field}, hovertemplate=f"imbalance within {label}: %{{y:+.3f}}<extra></extra>",
        ))
    spread.add_trace(go.Scatter(
        name="Spread", mode="lines", line={"color": "#26c6da", "width": 1.5},
        meta={"y": "spread_bps"}, hovertemplate="spread %{y:.3f} bps<extra></extra>",
    ))


REGIME_COLORS = {"calm": "rgba(38,166,154,0.08)", "elevated": "rgba(255,179,0,0.08)", "high": "rgba(239,83,80,0.12)",
                 "extreme": "rgba(239,83,80,0.25)"}
COMPONENT_COLORS = ("#ef5350", "#ab47bc", "#42a5f5", "#26c6da", "#ffb300", "#8d6e63", "#66bb6a", "#ec407a",
                    "#7e57c2", "#29b6f6", "#d4e157", "#ff7043", "#78909c", "#5c6bc0", "#9ccc65", "#ffa726",
                    "#26a69a", "#bdbdbd")


def spi_figure_empty(*, components: tuple[str, ...], labels: dict[str, str], theme: str = "dark",
                     thresholds: tuple[float, float, float]) -> str:
    """The index figure without data (the page fills it from its bars), its regime bands at the instrument's
    thresholds (elevated, high, extreme)."""
    return _spi_figure_cached(components, tuple(sorted(labels.items())), theme,
                              tuple(round(t, 1) for t in thresholds))


@functools.lru_cache(maxsize=256)
def _spi_figure_cached(components: tuple[str, ...], labels: tuple, theme: str, thresholds: tuple) -> str:
    figure = json.loads(_spi_figure_build(components, labels, theme))
    shapes, names = regime_bands(thresholds)
    layout = figure["layout"]
    layout["shapes"] = [*layout.get("shapes", []), *shapes]
    layout["annotations"] = [*layout.get("annotations", []), *names]
    return json.dumps(figure)


def regime_bands(thresholds: tuple[float, float, float]) -> tuple[list[dict], list[dict]]:
    """The index panel's regime bands between (0, elevated, high, extreme, 100), as Plotly layout shapes below the
    data, and their names at each band's top left: the layout Plotly's add_hrect writes, written here because the
    bands move with each instrument's calibrated thresholds and a Plotly build of the figure takes ~50 ms."""
    edges = (0.0, *thresholds, 100.0)
    shapes, names = [], []
    for (name, color), lo, hi in zip(REGIME_COLORS.items(), edges[:-1], edges[1:], strict=True):
        shapes.append({"type": "rect", "xref": "x domain", "x0": 0, "x1": 1, "yref": "y", "y0": lo, "y1": hi,
                       "fillcolor": color, "line": {"width": 0}, "layer": "below"})
        names.append({"text": name, "xref": "x domain", "x": 0, "xanchor": "left", "yref": "y", "y": hi,
                      "yanchor": "top", "showarrow": False, "font": {"size": 10}})
    return shapes, names


@functools.lru_cache(maxsize=16)
def _spi_figure_build(components: tuple[str, ...], labels: tuple, theme: str) -> str:
    """The index over its bands (final bars a line, the forming bar a hollow marker), and below it each component's
    signed contribution, stacked (final bars); without data and without the bands."""
    t = THEMES.get(theme, THEMES["dark"])
    labels = dict(labels)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=[0.55, 0.45],
                        subplot_titles=["Selling Pressure Index (0-100)", "What drives it: contribution per component"])
    line = "#ffffff" if theme == "dark" else "#111111"
    fig.add_trace(go.Scatter(
        x=[], y=[], name="SPI (final bars)", mode="lines", line={"color": line, "width": 2},
        meta={"y": "spi", "final": True}, hovertemplate="SPI %{y:.1f}<extra></extra>",
    ), row=1, col=1)
    fig.add_trace(go.Scatter(
        x=[], y=[], name="SPI (forming bar, provisional)", mode="markers",
        marker={"symbol": "circle-open", "size": 9, "color": line}, meta={"y": "spi", "forming": True},
        hovertemplate="SPI %{y:.1f} (forming, provisional)<extra></extra>",
    ), row=1, col=1)
    for i, name in enumerate(components):
        fig.add_trace(go.Bar(
            x=[], y=[], name=labels.get(name, name),
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
    """Shaded regions (Plotly layout shapes) for episodes, each from the top of a panel to its bottom."""
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
