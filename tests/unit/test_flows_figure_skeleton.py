"""The flows figure built from a cached skeleton is the figure plotly builds (issue #9)."""

from __future__ import annotations

import itertools
import json

import pytest

from apps.flows import charts


def _rows(asset, exchanges, reserve, stable, hours=5):
    rows = []
    for h in range(hours):
        t = f"2026-01-01T{h:02d}:00:00Z"
        for ex in [*exchanges, "all"]:
            rows.append({"asset": asset, "exchange": ex, "bucket_start": t, "netflow": str(h - 2),
                         "price_usd": None if h == 3 else 100.0 + h, "reserve": str(1000 + h) if reserve else None,
                         "whale_ratio": 0.1 * h, "netflow_z": h - 2.5})
        if stable:
            rows.append({"asset": "USDT", "exchange": "all", "bucket_start": t, "netflow_usd": 5.0 - h})
            rows.append({"asset": "USDC", "exchange": "all", "bucket_start": t, "netflow_usd": 1.0})
    return rows


def strength_three(*factors):
    """The 16 runs of a 2^(7-3) fractional factorial (resolution IV) over seven two-level factors: any three of them
    take all eight combinations, so every interaction of up to three choices is built, in 16 figures instead of 128."""
    for a, b, c, d in itertools.product((0, 1), repeat=4):
        yield tuple(f[bit] for f, bit in zip(factors, (a, b, c, d, a ^ b ^ c, b ^ c ^ d, a ^ c ^ d), strict=True))


RUNS = list(strength_three(["BTC", "USDT"], [[], ["binance", "okx"]], [False, True], [False, True], [False, True],
                           [False, True], ["dark", "light"]))


def test_the_runs_cover_every_three_way_combination():
    for trio in itertools.combinations(range(7), 3):
        assert len({tuple(json.dumps(run[i]) for i in trio) for run in RUNS}) == 8, trio


@pytest.mark.parametrize(("asset", "exchanges", "reserve", "stable", "pending", "data", "theme"), RUNS)
def test_skeleton_figure_equals_plotly_figure(asset, exchanges, reserve, stable, pending, data, theme):
    rows = _rows(asset, exchanges, reserve, stable) if data else []
    pend = [{"inflow_float": 1.5, "exchange": "binance"}, {"inflow_float": 0.5, "exchange": "okx"}] if pending else []
    kw = {"asset": asset, "exchanges": exchanges, "pending": pend, "now_hour": "2026-01-01T05:00:00Z",
          "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "theme": theme}
    assert json.loads(charts.flows_figure(rows, **kw)) == json.loads(charts.flows_figure_plotly(rows, **kw))
