"""Derivatives and on-chain flow components against loops, with missing data."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from apps.pressure.indicators import derivatives, flows

NAN = math.nan


def test_derivative_components_follow_their_definitions():
    frame = pd.DataFrame({
        "long_liquidation_quote": [0.0, 1e6, NAN, 5e4, 0.0],
        "funding_rate": [1e-4, 1e-4, 5e-5, NAN, -2e-5],
        "open_interest": [100.0, 90.0, 95.0, 80.0, 80.0],
        "dvol": [50.0, 52.5, NAN, 60.0, 58.0],
        "close": [10.0, 9.0, 9.5, 9.0, 8.0],
    }, index=pd.Index([0, 60_000, 120_000, 180_000, 240_000], name="bucket_ms"))
    got = derivatives.derivatives_components(frame)
    assert got["long_liquidations"].tolist()[:2] == [0.0, 1e6] and math.isnan(got["long_liquidations"].iloc[2])
    want_funding = [NAN, 0.0, 5e-5, NAN, NAN]
    want_oi = [NAN, 0.1, 0.0, 1 - 80 / 95, 0.0]  # bar 2: OI rose; bar 4: OI flat while price fell
    want_dvol = [NAN, 2.5, NAN, NAN, -2.0]
    for col, want in (("funding_drop", want_funding), ("oi_drop", want_oi), ("dvol_rise", want_dvol)):
        for g, w in zip(got[col].tolist(), want, strict=True):
            assert g == pytest.approx(w, nan_ok=True, abs=1e-15), col


def test_oi_drop_needs_a_falling_price():
    oi = pd.Series([100.0, 90.0, 80.0])
    up = derivatives.oi_drop(oi, pd.Series([10.0, 11.0, 12.0]))
    assert up.tolist()[1:] == [0.0, 0.0]
    missing = derivatives.oi_drop(oi, pd.Series([10.0, NAN, 9.0]))
    assert missing.isna().all()


def test_netflow_z_matches_a_loop_with_the_current_bar_excluded():
    rng = np.random.default_rng(3)
    values = rng.normal(10, 5, 300)
    values[50] = NAN
    window, min_periods = 40, 10
    got = flows.netflow_z(pd.Series(values), window=window, min_periods=min_periods)
    for i, v in enumerate(values):
        prior = [x for x in values[max(0, i - window): i] if not math.isnan(x)]
        if len(prior) < min_periods or math.isnan(v):
            assert math.isnan(got.iloc[i])
        else:
            assert got.iloc[i] == pytest.approx((v - statistics.mean(prior)) / statistics.stdev(prior), rel=1e-9)


def test_flat_netflow_history_gives_zero_or_nan_never_inf():
    got = flows.netflow_z(pd.Series([3.0] * 20 + [3.0, 7.0]), window=10, min_periods=5)
    assert got.iloc[5:21].eq(0).all()
    assert math.isnan(got.iloc[21])
    assert not np.isinf(got.to_numpy()).any()


def test_flow_components_pass_whale_ratio_and_stablecoins_through():
    frame = pd.DataFrame({"whale_ratio": [0.2, NAN, 0.9], "stablecoin_netflow": [1e6, -2e6, 0.0]})
    got = flows.flow_components(frame)
    assert list(got.columns) == ["whale_ratio", "stablecoin_netflow"]
    assert got["whale_ratio"].iloc[2] == 0.9 and math.isnan(got["whale_ratio"].iloc[1])
    assert got["stablecoin_netflow"].tolist() == [1e6, -2e6, 0.0]
