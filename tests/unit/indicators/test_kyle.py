"""Kyle's lambda on real bars against OLS by hand, and its zero-variance guard."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from apps.pressure.indicators import kyle, orderflow

from .feeds import trades_of


def test_kyles_lambda_matches_ols_by_hand_on_real_trades():
    t = trades_of("usdm_btcusdt_20240808.gz")
    flow = orderflow.trade_flow_bars(t.time_ms, t.price, t.qty, t.taker_sell, interval_ms=1_000)
    delta = orderflow.delta(flow)
    window, min_periods = 20, 5
    got = kyle.kyles_lambda(flow["close"], delta, window=window, min_periods=min_periods)
    closes, q = flow["close"].tolist(), delta.tolist()
    dp = [math.nan] + [b - a for a, b in itertools.pairwise(closes)]
    checked = 0
    for i in range(len(q)):
        pairs = [(q[k], dp[k]) for k in range(max(0, i - window + 1), i + 1) if not math.isnan(dp[k])]
        if len(pairs) < min_periods:
            assert math.isnan(got.iloc[i])
            continue
        mq = sum(p[0] for p in pairs) / len(pairs)
        mp = sum(p[1] for p in pairs) / len(pairs)
        sqq = sum((p[0] - mq) ** 2 for p in pairs)
        sqp = sum((p[0] - mq) * (p[1] - mp) for p in pairs)
        assert got.iloc[i] == pytest.approx(sqp / sqq, rel=1e-6, abs=1e-12)
        checked += 1
    assert checked > 300
    assert got.median() > 0, "net buying should go with rising prices"


def test_exact_linear_impact_and_zero_variance_guard():
    q = pd.Series([1.0, -2.0, 3.0, 0.5, -1.0, 2.0])
    close = (2.0 * q).cumsum() + 100  # each bar's price change is exactly 2 x its signed volume
    got = kyle.kyles_lambda(close, q, window=4, min_periods=3)
    np.testing.assert_allclose(got.iloc[3:], 2.0)
    flat = kyle.kyles_lambda(close, pd.Series(np.full(6, 5.0)), window=4, min_periods=2)
    assert flat.isna().all() and not np.isinf(flat.to_numpy()).any()
    none = kyle.kyles_lambda(pd.Series(np.full(6, 100.0)), pd.Series(np.zeros(6)), window=3)
    assert none.isna().all()
