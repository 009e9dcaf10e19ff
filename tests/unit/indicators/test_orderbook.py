"""Book imbalance, bid withdrawal and spread widening on real best bid/ask, against loops."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.pressure.indicators import orderbook

from .feeds import book_tickers

WINDOW, MIN_PERIODS, INTERVAL = 20, 5, 1_000


def l1_samples(name: str):
    """Top of book as one depth band "l1": depth in quote currency (price x size)."""
    rows = book_tickers(name)
    t = np.array([r[0] for r in rows], dtype=np.int64)
    bid = np.array([r[1] for r in rows])
    ask = np.array([r[3] for r in rows])
    bid_depth = np.array([r[1] * r[2] for r in rows])[:, None]
    ask_depth = np.array([r[3] * r[4] for r in rows])[:, None]
    return t, bid, ask, bid_depth, ask_depth


def trailing_median_loop(values: list[float], i: int) -> float:
    prior = [v for v in values[max(0, i - WINDOW): i] if not math.isnan(v)]
    return statistics.median(prior) if len(prior) >= MIN_PERIODS else math.nan


@pytest.mark.parametrize("name", ["usdm_btcusdt_20240808.gz", "spot_ethusdt_20240808.gz"])
def test_book_components_match_a_loop_on_real_best_bid_ask(name):
    t, bid, ask, bd, ad = l1_samples(name)
    got = orderbook.orderbook_components(t, bid, ask, bd, ad, interval_ms=INTERVAL, bands=("l1",),
                                         window=WINDOW, min_periods=MIN_PERIODS)
    per_bar: dict[int, list[int]] = {}
    for k, time_ms in enumerate(t.tolist()):
        per_bar.setdefault(time_ms - time_ms % INTERVAL, []).append(k)
    spreads, depths, imbalances = [], [], []
    for bucket in got.index:
        idx = per_bar.get(bucket, [])
        if not idx:
            spreads.append(math.nan)
            depths.append(math.nan)
            imbalances.append(math.nan)
            continue
        spreads.append(sum((ask[k] - bid[k]) / ((ask[k] + bid[k]) / 2) * 10_000 for k in idx) / len(idx))
        depths.append(sum(bd[k, 0] for k in idx) / len(idx))
        imbalances.append(sum((bd[k, 0] - ad[k, 0]) / (bd[k, 0] + ad[k, 0]) for k in idx) / len(idx))
    assert len(got) > 300
    for i, bucket in enumerate(got.index):
        row = got.loc[bucket]
        assert row.spread_bps == pytest.approx(spreads[i], rel=1e-12, nan_ok=True)
        assert row.imbalance_l1 == pytest.approx(imbalances[i], rel=1e-9, abs=1e-12, nan_ok=True)
        med = trailing_median_loop(depths, i)
        want = 1 - depths[i] / med if med > 0 else math.nan
        assert row.bid_withdrawal_l1 == pytest.approx(want, rel=1e-9, abs=1e-12, nan_ok=True)
        med = trailing_median_loop(spreads, i)
        want = spreads[i] / med - 1 if med > 0 else math.nan
        assert row.spread_widening == pytest.approx(want, rel=1e-9, abs=1e-12, nan_ok=True)
    assert got["bid_withdrawal_l1"].notna().sum() > 200
    assert (got["imbalance_l1"].dropna().abs() <= 1).all()


def test_bands_are_kept_apart_and_an_empty_band_is_undefined_not_zero():
    t = np.array([0, 10, 1_000], dtype=np.int64)
    bid, ask = np.full(3, 100.0), np.full(3, 100.1)
    bd = np.array([[10.0, 0.0], [30.0, 0.0], [5.0, 1.0]])
    ad = np.array([[30.0, 0.0], [10.0, 0.0], [5.0, 3.0]])
    got = orderbook.book_sample_bars(t, bid, ask, bd, ad, interval_ms=1_000, bands=("near", "far"))
    assert got["imbalance_near"].tolist() == [0.0, 0.0]  # mean of -0.5 and +0.5
    assert math.isnan(got["imbalance_far"].iloc[0]) and got["imbalance_far"].iloc[1] == -0.5
    assert got["bid_depth_near"].tolist() == [20.0, 5.0]
    assert got["samples"].tolist() == [2, 1]


depth_rows = st.lists(st.tuples(st.floats(1, 1e6), st.floats(1, 1e6)), min_size=2, max_size=80)


@settings(max_examples=60, deadline=None)
@given(depth_rows, st.integers(-20, 20))
def test_imbalance_and_withdrawal_are_scale_invariant_and_mirror(rows, power):
    n = len(rows)
    t = np.arange(n, dtype=np.int64) * 1_000
    bd = np.array([r[0] for r in rows])[:, None]
    ad = np.array([r[1] for r in rows])[:, None]
    bid, ask = np.full(n, 100.0), np.full(n, 100.5)
    kw = {"interval_ms": 1_000, "bands": ("b",), "window": 5, "min_periods": 2}
    a = orderbook.orderbook_components(t, bid, ask, bd, ad, **kw)
    k = 2.0**power
    b = orderbook.orderbook_components(t, bid, ask, bd * k, ad * k, **kw)
    np.testing.assert_array_equal(a["imbalance_b"].to_numpy(), b["imbalance_b"].to_numpy())
    np.testing.assert_array_equal(a["bid_withdrawal_b"].to_numpy(), b["bid_withdrawal_b"].to_numpy())
    m = orderbook.orderbook_components(t, bid, ask, ad, bd, **kw)
    np.testing.assert_array_equal(m["imbalance_b"].to_numpy(), -a["imbalance_b"].to_numpy())
    assert not np.isinf(a.to_numpy()).any()


def test_constant_book_gives_zero_withdrawal_and_widening():
    t = np.arange(30, dtype=np.int64) * 1_000
    ones = np.ones((30, 1))
    got = orderbook.orderbook_components(t, np.full(30, 100.0), np.full(30, 100.2), ones, ones, interval_ms=1_000,
                                         window=10, min_periods=3)
    assert got["bid_withdrawal_band0"].iloc[3:].eq(0).all() and got["spread_widening"].iloc[3:].eq(0).all()
    assert got["bid_withdrawal_band0"].iloc[:3].isna().all()
