"""The pages' shared chart style: themes, buy/sell colours, a field as a trace's values, and the finishing step of
the stacked-panel figures (instrument, derivatives, flows). Plotly only; no app is imported."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

THEMES = {
    "dark": {"template": "plotly_dark", "paper": "#0f1419", "plot": "#0f1419", "grid": "#223"},
    "light": {"template": "plotly_white", "paper": "#ffffff", "plot": "#ffffff", "grid": "#e5e7eb"},
}
BUY, SELL = "#26a69a", "#ef5350"


def floats_of(rows: list[dict], field: str, sign: int = 1) -> list:
    """One field of the rows as floats (times ``sign``) for a trace; a missing value stays a gap (None)."""
    out = []
    for r in rows:
        v = r.get(field)
        out.append(None if v is None else sign * float(v))
    return out


def panels_figure_json(fig: go.Figure, *, theme: str, height: int, margin: dict, legend_y: float) -> str:
    """The layout the pages' stacked-panel figures share (theme, stacked bars, one hover for all panels, a legend
    above, zoom kept across data updates), and the figure as JSON text."""
    t = THEMES.get(theme, THEMES["dark"])
    fig.update_layout(
        template=t["template"], paper_bgcolor=t["paper"], plot_bgcolor=t["plot"], height=height,
        margin=margin, barmode="relative", hovermode="x unified",
        legend={"orientation": "h", "y": legend_y, "x": 0}, uirevision="keep-zoom",
    )
    return pio.to_json(fig, validate=False, pretty=False)
