"""VPIN with exact taker sides on the real recordings, against an exact (Fraction) bucket-filling loop."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.pressure.indicators import vpin
from tests.recordings import raw_trades

from .feeds import trades_of


def buckets_by_hand(name: str, bucket_volume: Fraction | None) -> tuple[Fraction, list[tuple[int, Fraction, Fraction]]]:
    rows = sorted(raw_trades(name), key=lambda r: (r[1], r[0]))
    if bucket_volume is None:
        bucket_volume = sum(Fraction(r[3]) for r in rows) / 50
    out, buy, sell = [], Fraction(0), Fraction(0)
    for _tid, t, _price, qty, is_sell in rows:
        left = Fraction(qty)
        while left > 0:
            take = min(bucket_volume - buy - sell, left)
            if is_sell:
                sell += take
            else:
                buy += take
            left -= take
            if buy + sell == bucket_volume:  # the trade that fills a bucket completes it
                out.append((t, buy, sell))
                buy, sell = Fraction(0), Fraction(0)
    return bucket_volume, out


@pytest.mark.parametrize(("name", "volume"), [("spot_btcusdt_20240808.gz", None),
                                              ("usdm_btcusdt_20240808.gz", None),
                                              ("usdm_btcusdt_20240808.gz", Fraction(5))])
def test_buckets_split_trades_exactly_like_a_loop(name, volume):
    t = trades_of(name)
    v, want = buckets_by_hand(name, volume)
    got = vpin.volume_buckets(t.time_ms, t.qty, t.taker_sell, bucket_volume=None if volume is None else float(volume))
    assert got.bucket_volume == pytest.approx(float(v), rel=1e-12)
    assert len(got.end_ms) == len(want) >= 50
    assert got.end_ms.tolist() == [w[0] for w in want]
    for k, (_, buy, sell) in enumerate(want):
        assert got.buy[k] == pytest.approx(float(buy), abs=1e-9 * float(v))
        assert got.sell[k] == pytest.approx(float(sell), abs=1e-9 * float(v))
        assert got.imbalance[k] == pytest.approx(float(abs(buy - sell) / v), abs=1e-9)


def test_vpin_per_bucket_and_per_bar_match_a_loop():
    name = "usdm_btcusdt_20240808.gz"
    t = trades_of(name)
    v, want = buckets_by_hand(name, Fraction(5))
    n = 20
    imb = [float(abs(b - s) / v) for _, b, s in want]
    by_hand = [math.nan if k < n - 1 else sum(imb[k - n + 1: k + 1]) / n for k in range(len(imb))]
    series = vpin.vpin(t.time_ms, t.qty, t.taker_sell, bucket_volume=5.0, n_buckets=n)
    np.testing.assert_allclose(series.to_numpy(), by_hand, atol=1e-9)
    bars = vpin.vpin_bars(t.time_ms, t.qty, t.taker_sell, interval_ms=10_000, bucket_volume=5.0, n_buckets=n)
    ends = [w[0] for w in want]
    for bucket, value in bars.items():
        done = [k for k, end in enumerate(ends) if end < bucket + 10_000]  # completed by the bar end
        expected = by_hand[done[-1]] if done else math.nan
        assert value == pytest.approx(expected, abs=1e-9, nan_ok=True)
    assert bars.notna().sum() > 20 and ((bars.dropna() >= 0) & (bars.dropna() <= 1)).all()


def test_batches_with_a_carried_bucket_equal_the_whole_stream():
    t = trades_of("spot_btcusdt_20240808.gz")
    whole = vpin.volume_buckets(t.time_ms, t.qty, t.taker_sell, bucket_volume=2.0)
    ends, imbalances = [], []
    carry_volume = carry_buy = 0.0
    for lo in range(0, len(t), 997):
        part = slice(lo, lo + 997)
        b = vpin.volume_buckets(t.time_ms[part], t.qty[part], t.taker_sell[part], bucket_volume=2.0,
                                carry_volume=carry_volume, carry_buy=carry_buy)
        ends += b.end_ms.tolist()
        imbalances += b.imbalance.tolist()
        carry_volume, carry_buy = b.carry_volume, b.carry_buy
    assert ends == whole.end_ms.tolist()
    np.testing.assert_allclose(imbalances, whole.imbalance, atol=1e-9)
    history = whole.imbalance[:30]
    np.testing.assert_allclose(vpin.rolling_vpin(whole.imbalance[30:], n_buckets=10, history=history),
                               vpin.rolling_vpin(whole.imbalance, n_buckets=10)[30:], atol=1e-12)


trade_lists = st.lists(st.tuples(st.integers(1, 1_000), st.booleans()), min_size=1, max_size=200)


@settings(max_examples=60, deadline=None)
@given(trade_lists, st.integers(-10, 10))
def test_vpin_is_scale_invariant_and_bounded(rows, power):
    t = np.arange(len(rows), dtype=np.int64) * 100
    qty = np.array([float(r[0]) for r in rows])
    sell = np.array([r[1] for r in rows])
    a = vpin.vpin(t, qty, sell, n_buckets=5)
    b = vpin.vpin(t, qty * 2.0**power, sell, n_buckets=5)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-12)
    assert a.index.tolist() == b.index.tolist()
    values = a.dropna().to_numpy()
    assert ((values >= 0) & (values <= 1 + 1e-12)).all()
    mirrored = vpin.vpin(t, qty, ~sell, n_buckets=5)
    np.testing.assert_allclose(mirrored.to_numpy(), a.to_numpy(), atol=1e-12)  # |buy - sell| is symmetric


def test_no_volume_gives_no_buckets():
    empty = np.zeros(0)
    got = vpin.volume_buckets(empty.astype(np.int64), empty, empty.astype(bool))
    assert len(got.end_ms) == 0 and got.carry_volume == 0
    assert vpin.vpin(empty.astype(np.int64), empty, empty.astype(bool)).empty
