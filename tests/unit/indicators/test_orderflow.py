"""Order flow per bar on the real recordings, against plain-Python loops, plus properties."""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.pressure.indicators import orderflow
from tests.recordings import raw_trades

from .feeds import trades_of

FILES = ["spot_btcusdt_20240808.gz", "usdm_btcusdt_20240808.gz"]


def loop_bars(name: str, interval_ms: int) -> dict[int, dict]:
    bars: dict[int, dict] = {}
    for _tid, t, price, qty, sell in sorted(raw_trades(name), key=lambda r: (r[1], r[0])):
        bar = bars.setdefault(t - t % interval_ms, {"buy": Decimal(0), "sell": Decimal(0), "nb": 0, "ns": 0})
        if sell:
            bar["sell"] += Decimal(qty)
            bar["ns"] += 1
        else:
            bar["buy"] += Decimal(qty)
            bar["nb"] += 1
        bar["close"] = float(price)
    return bars


@pytest.mark.parametrize("name", FILES)
def test_ratio_delta_and_count_imbalance_match_a_loop(name):
    t = trades_of(name)
    got = orderflow.orderflow_components(t.time_ms, t.price, t.qty, t.taker_sell, interval_ms=250)
    want = loop_bars(name, 250)
    assert len(got) == (max(want) - min(want)) // 250 + 1 > 1_000
    empty = 0
    for bucket, row in got.iterrows():
        w = want.get(bucket)
        if w is None:
            empty += 1
            assert math.isnan(row.taker_sell_ratio) and math.isnan(row.trade_count_imbalance)
            assert row.delta == 0
            continue
        volume = w["buy"] + w["sell"]
        assert row.taker_sell_ratio == pytest.approx(float(w["sell"] / volume), rel=1e-12)
        assert row.delta == pytest.approx(float(w["buy"] - w["sell"]), abs=1e-9)
        assert row.trade_count_imbalance == (w["nb"] - w["ns"]) / (w["nb"] + w["ns"])
        assert row.close == w["close"]
    assert empty > 0, "the grid must include bars without trades"


def test_cvd_slope_matches_least_squares_by_hand():
    name = "usdm_btcusdt_20240808.gz"
    t = trades_of(name)
    window = 10
    got = orderflow.orderflow_components(t.time_ms, t.price, t.qty, t.taker_sell, interval_ms=1_000,
                                         cvd_window=window)
    want = loop_bars(name, 1_000)
    deltas = [float(want[b]["buy"] - want[b]["sell"]) if b in want else 0.0 for b in got.index]
    cvd, run = [], 0.0
    for d in deltas:
        run += d
        cvd.append(run)
    slopes = got["cvd_slope"].to_numpy()
    assert np.isnan(slopes[: window - 1]).all()
    for i in range(window - 1, len(cvd)):
        ys = cvd[i - window + 1: i + 1]
        xs = list(range(window))
        mx, my = sum(xs) / window, sum(ys) / window
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
        assert slopes[i] == pytest.approx(slope, rel=1e-9, abs=1e-9)


def quantile_sorted(values: list[float], q: float) -> float:
    h = q * (len(values) - 1)
    lo = math.floor(h)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (h - lo)


@pytest.mark.parametrize("name", FILES)
def test_large_trade_sell_share_matches_a_trailing_quantile_loop(name):
    t = trades_of(name)
    window, min_trades, q = 1_000, 100, 0.95
    got = orderflow.large_trade_bars(t.time_ms, t.qty, t.taker_sell, interval_ms=60_000, quantile=q,
                                     window=window, min_trades=min_trades)
    share = orderflow.large_trade_sell_share(got)
    ordered, fifo = [], deque()
    bars: dict[int, list[float]] = {}
    large_count = 0
    for time_ms, qty, sell in zip(t.time_ms.tolist(), t.qty.tolist(), t.taker_sell.tolist(), strict=True):
        # Threshold from earlier trades only: the trade itself joins the window afterwards.
        if len(fifo) >= min_trades and qty >= quantile_sorted(ordered, q):
            large_count += 1
            bar = bars.setdefault(time_ms - time_ms % 60_000, [0.0, 0.0])
            bar[1 if sell else 0] += qty
        insort(ordered, qty)
        fifo.append(qty)
        if len(fifo) > window:
            del ordered[bisect_left(ordered, fifo.popleft())]
    assert large_count > 0.03 * len(t)
    for bucket, value in share.items():
        if bucket in bars:
            buy, sell = bars[bucket]
            assert value == pytest.approx(sell / (buy + sell), rel=1e-12)
        else:
            assert math.isnan(value)


def test_threshold_uses_only_earlier_trades_and_history_continues_the_stream():
    qty = np.array([1.0, 1.0, 1.0, 1.0, 100.0, 1.0])
    thr = orderflow.large_trade_threshold(qty, quantile=0.5, window=3, min_trades=2)
    assert np.isnan(thr[:2]).all()  # fewer than min_trades earlier sizes
    assert thr[4] == 1.0  # the block does not raise its own threshold
    assert thr[5] == 1.0  # median of (1, 1, 100)
    whole = orderflow.large_trade_threshold(qty, quantile=0.9, window=4, min_trades=1)
    split = orderflow.large_trade_threshold(qty[3:], quantile=0.9, window=4, min_trades=1, history=qty[:3])
    np.testing.assert_array_equal(whole[3:], split)


def _pandas_rolling_threshold(qty, history, *, quantile, window, min_trades):
    """The definition: pandas' rolling quantile over history + batch, shifted by one trade."""
    prior = history[-window:]
    sizes = pd.Series(np.concatenate((prior, qty)))
    rolled = sizes.rolling(window, min_periods=max(1, min_trades)).quantile(quantile, interpolation="linear")
    return rolled.shift(1).to_numpy()[len(prior):]


@pytest.mark.parametrize("seed", range(4))
def test_a_live_batch_gets_the_same_thresholds_as_the_rolling_quantile_of_the_whole_stream(seed):
    # Short batches take a sorted-window path; it must give pandas' numbers to the bit, ties and all.
    rng = np.random.default_rng(seed)
    for _ in range(200):
        window = int(rng.integers(1, 80))
        history = np.round(rng.exponential(1.0, int(rng.integers(0, 2 * window))), int(rng.integers(0, 4)))
        batch = np.round(rng.exponential(1.0, int(rng.integers(1, 60))), int(rng.integers(0, 4)))
        quantile, min_trades = float(rng.choice([0.95, 0.5, 0.01, rng.random()])), int(rng.integers(0, window + 1))
        got = orderflow.large_trade_threshold(batch, quantile=quantile, window=window, min_trades=min_trades,
                                              history=history)
        want = _pandas_rolling_threshold(batch, history, quantile=quantile, window=window, min_trades=min_trades)
        np.testing.assert_array_equal(got, want)


trade_lists = st.lists(
    st.tuples(st.integers(0, 120_000), st.integers(1, 10_000), st.booleans()), min_size=1, max_size=150,
).map(lambda rows: sorted(rows, key=lambda r: r[0]))


def arrays(rows):
    t = np.array([r[0] for r in rows], dtype=np.int64)
    qty = np.array([float(r[1]) for r in rows])
    sell = np.array([r[2] for r in rows], dtype=bool)
    return t, np.full(len(rows), 100.0), qty, sell


def components(t, price, qty, sell):
    return orderflow.orderflow_components(t, price, qty, sell, interval_ms=10_000, cvd_window=3,
                                          large_window=20, large_min_trades=5)


@settings(max_examples=60, deadline=None)
@given(trade_lists, st.integers(-10, 10))
def test_ratios_are_scale_invariant(rows, power):
    t, price, qty, sell = arrays(rows)
    a = components(t, price, qty, sell)
    b = components(t, price, qty * 2.0**power, sell)  # powers of two scale floats exactly
    for col in ("taker_sell_ratio", "trade_count_imbalance", "large_trade_sell_share"):
        np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy())
    np.testing.assert_array_equal(a["delta"].to_numpy() * 2.0**power, b["delta"].to_numpy())


@settings(max_examples=60, deadline=None)
@given(trade_lists)
def test_mirroring_sides_flips_delta_slope_and_count_imbalance(rows):
    t, price, qty, sell = arrays(rows)
    a = components(t, price, qty, sell)
    b = components(t, price, qty, ~sell)
    np.testing.assert_array_equal(b["delta"].to_numpy(), -a["delta"].to_numpy())
    np.testing.assert_allclose(b["cvd_slope"].to_numpy(), -a["cvd_slope"].to_numpy(), atol=1e-9)
    np.testing.assert_array_equal(b["trade_count_imbalance"].to_numpy(), -a["trade_count_imbalance"].to_numpy())
    np.testing.assert_allclose(b["taker_sell_ratio"].to_numpy(), 1 - a["taker_sell_ratio"].to_numpy(), atol=1e-15)
    for frame in (a, b):
        values = frame.drop(columns="close").to_numpy()
        assert not np.isinf(values).any()


def test_empty_input_gives_an_empty_frame_and_unsorted_is_refused():
    empty = np.zeros(0)
    got = orderflow.orderflow_components(empty.astype(np.int64), empty, empty, empty.astype(bool), interval_ms=1_000)
    assert got.empty
    with pytest.raises(ValueError, match="sorted"):
        orderflow.trade_flow_bars(np.array([2, 1]), np.ones(2), np.ones(2), np.zeros(2, bool), interval_ms=1_000)
