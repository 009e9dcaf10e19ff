"""The instrument page's figures: built by Plotly once per theme, then per instrument and per calibration."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from apps.dashboard import charts


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize(("base", "quote"), [("ETH", "EUR"), ("1000PEPE", "USDC"), ('W"X', "Ü\\")])
def test_an_instruments_panels_are_the_panels_plotly_builds_for_it(theme, base, quote):
    built = json.loads(charts.instrument_panels_build(base=base, quote=quote, theme=theme))
    assert json.loads(charts.instrument_panels(base=base, quote=quote, theme=theme)) == built
    price = built["panels"][0]["figure"]
    assert price["data"][0]["name"] == f"Price ({quote})" and price["layout"]["yaxis"]["title"]["text"] == quote


def test_episodes_are_shaded_on_every_panel_after_its_own_shapes():
    shapes = [{"type": "rect", "xref": "x", "yref": "paper", "x0": "2026-01-01T00:00:00Z",
               "x1": "2026-01-01T00:05:00Z", "y0": 0, "y1": 1}]
    panels = json.loads(charts.instrument_panels(base="BTC", quote="USDT", shapes=shapes))["panels"]
    plain = json.loads(charts.instrument_panels(base="BTC", quote="USDT"))["panels"]
    for panel, own in zip(panels, plain, strict=True):
        assert panel["figure"]["layout"]["shapes"] == [*own["figure"]["layout"].get("shapes", []), *shapes]


@pytest.mark.parametrize("thresholds", [(64.0, 75.0, 90.0), (51.3, 58.9, 71.2)])
def test_the_index_panel_has_its_regime_bands_where_plotly_draws_them(thresholds):
    figure = json.loads(charts.spi_figure_empty(components=("cvd_slope", "spread_widening"),
                                                labels={"cvd_slope": "CVD slope"}, theme="dark",
                                                thresholds=thresholds))
    # Plotly's own hrects over the first row, for the same thresholds (added to a subplot holding a trace: Plotly
    # leaves out hrects on an empty subplot, which once left the page without any band).
    reference = make_subplots(rows=2, cols=1, shared_xaxes=True)
    reference.add_trace(go.Scatter(x=[0], y=[0]), row=1, col=1)
    edges = (0, *thresholds, 100)
    for (name, color), lo, hi in zip(charts.REGIME_COLORS.items(), edges, edges[1:], strict=False):
        reference.add_hrect(y0=lo, y1=hi, fillcolor=color, line_width=0, layer="below", row=1, col=1,
                            annotation_text=name, annotation_position="top left", annotation_font_size=10)
    want = reference.to_plotly_json()["layout"]
    layout = figure["layout"]
    assert layout["shapes"] == want["shapes"]
    names = [a for a in layout["annotations"] if a["text"] in charts.REGIME_COLORS]
    assert names == want["annotations"]
    assert [a["text"] for a in names] == ["calm", "elevated", "high", "extreme"]
    labels = {trace["name"] for trace in figure["data"]}
    assert {"CVD slope", "spread_widening", "SPI (final bars)"} <= labels
