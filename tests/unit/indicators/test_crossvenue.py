"""Cross-venue aggregation and spot-vs-perp leadership on the overlapping real BTC recordings."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from apps.pressure.indicators import crossvenue, orderflow

from .feeds import trades_of


def venue_flows(interval_ms: int = 1_000):
    out = {}
    for venue, name in (("spot", "spot_btcusdt_20240808.gz"), ("perp", "usdm_btcusdt_20240808.gz")):
        t = trades_of(name)
        out[venue] = orderflow.trade_flow_bars(t.time_ms, t.price, t.qty, t.taker_sell, interval_ms=interval_ms)
    index = out["spot"].index.intersection(out["perp"].index)
    return {v: f.loc[index] for v, f in out.items()}


def test_volume_weighted_ratio_matches_a_loop_on_real_venues():
    f = venue_flows()
    ratios = pd.DataFrame({v: orderflow.taker_sell_ratio(x) for v, x in f.items()})
    volumes = pd.DataFrame({v: x["buy"] + x["sell"] for v, x in f.items()})
    got = crossvenue.volume_weighted(ratios, volumes)
    assert len(got) > 300
    for bucket in got.index:
        num = den = 0.0
        for v in ("spot", "perp"):
            r, w = ratios.at[bucket, v], volumes.at[bucket, v]
            if not math.isnan(r) and w > 0:
                num += w * r
                den += w
        want = num / den if den else math.nan
        assert got[bucket] == pytest.approx(want, rel=1e-12, nan_ok=True)
    frames = {v: x.assign(ratio=ratios[v], volume=volumes[v]) for v, x in f.items()}
    pd.testing.assert_series_equal(crossvenue.aggregate_venues(frames, component="ratio"), got.rename("ratio"))
    # Weighted by base volume, the combined ratio is total sells / total volume.
    total = (f["spot"]["sell"] + f["perp"]["sell"]) / volumes.sum(axis=1)
    np.testing.assert_allclose(got.dropna(), total[got.notna()], rtol=1e-12)


def test_divergence_and_lead_lag_on_real_spot_and_perp():
    f = venue_flows()
    div = crossvenue.spot_perp_divergence(orderflow.taker_sell_ratio(f["perp"]), orderflow.taker_sell_ratio(f["spot"]))
    assert div.dropna().between(-1, 1).all() and div.notna().sum() > 200
    spot, perp = orderflow.delta(f["spot"]), orderflow.delta(f["perp"])
    got = crossvenue.lead_lag(spot, perp, max_lag=3)
    assert got.lag in range(-3, 4) and got.leader in ("spot", "perp", "neither")
    s, p = spot.tolist(), perp.tolist()
    for lag in range(-3, 4):
        pairs = [(s[i - lag], p[i]) for i in range(len(p)) if 0 <= i - lag < len(s)]
        n = len(pairs)
        mx, my = sum(a for a, _ in pairs) / n, sum(b for _, b in pairs) / n
        cov = sum((a - mx) * (b - my) for a, b in pairs)
        sx = math.sqrt(sum((a - mx) ** 2 for a, _ in pairs))
        sy = math.sqrt(sum((b - my) ** 2 for _, b in pairs))
        assert got.correlations[lag] == pytest.approx(cov / (sx * sy), rel=1e-9)
    assert got.correlation == got.correlations.max()


@pytest.mark.parametrize(("shift", "leader"), [(2, "spot"), (-3, "perp"), (0, "neither")])
def test_lead_lag_finds_a_known_shift(shift, leader):
    rng = np.random.default_rng(11)
    spot = pd.Series(rng.normal(size=400))
    perp = spot.shift(shift) + rng.normal(scale=0.1, size=400)  # perp_t follows spot_{t-shift}
    got = crossvenue.lead_lag(spot, perp, max_lag=5)
    assert (got.lag, got.leader) == (shift, leader)


def test_no_data_gives_no_leader():
    empty = pd.Series([math.nan] * 5)
    got = crossvenue.lead_lag(empty, empty)
    assert got.lag is None and got.leader is None
    assert crossvenue.volume_weighted(pd.DataFrame({"a": [math.nan]}), pd.DataFrame({"a": [1.0]})).isna().all()
