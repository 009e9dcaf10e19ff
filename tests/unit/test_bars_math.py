from decimal import Decimal

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from apps.markets.validation import decimals_of
from apps.pressure import bars as barmath
from apps.pressure.indicators import orderbook
from tests.recordings import minute_bars_by_hand, raw_trades


def _arrays(trades):
    trades = sorted(trades, key=lambda r: (r[1], r[0]))
    pd_ = max(decimals_of(t[2]) for t in trades)
    qd = max(decimals_of(t[3]) for t in trades)
    t = np.array([r[1] for r in trades], dtype=np.int64)
    price = barmath.to_units([r[2] for r in trades], pd_)
    qty = barmath.to_units([r[3] for r in trades], qd)
    sell = np.array([r[4] for r in trades], dtype=bool)
    return t, price, qty, sell, pd_, qd


def test_trade_bars_equal_hand_computed_bars_on_real_btc_recording():
    trades = raw_trades("spot_btcusdt_20240808.gz")
    t, price, qty, sell, pd_, qd = _arrays(trades)
    got = barmath.trade_bars(t, price, qty, sell, interval_ms=60_000)
    want = minute_bars_by_hand(trades)
    assert list(got.bucket_ms) == sorted(want)
    assert len(got) >= 6
    for i, bucket in enumerate(got.bucket_ms.tolist()):
        w = want[bucket]
        assert barmath.from_units(got.open[i], pd_) == w["open"]
        assert barmath.from_units(got.high[i], pd_) == w["high"]
        assert barmath.from_units(got.low[i], pd_) == w["low"]
        assert barmath.from_units(got.close[i], pd_) == w["close"]
        assert got.trades[i] == w["trades"]
        assert barmath.from_units(got.buy_base[i], qd) == w["buy"]
        assert barmath.from_units(got.sell_base[i], qd) == w["sell"]
        assert barmath.from_units(got.buy_quote[i], pd_ + qd) == w["buy_q"]
        assert barmath.from_units(got.sell_quote[i], pd_ + qd) == w["sell_q"]


def test_taker_sell_counts_follow_binance_m_flag_on_real_eth_recording():
    trades = raw_trades("spot_ethusdt_20240808.gz")
    t, price, qty, sell, _, qd = _arrays(trades)
    got = barmath.trade_bars(t, price, qty, sell, interval_ms=3_600_000)
    sold = sum(Decimal(r[3]) for r in trades if r[4] is True)
    bought = sum(Decimal(r[3]) for r in trades if r[4] is False)
    assert barmath.from_units(got.sell_base.sum(), qd) == sold
    assert barmath.from_units(got.buy_base.sum(), qd) == bought
    assert got.trades.sum() == 6_106


def test_rollup_of_minutes_equals_direct_five_minute_bars():
    trades = raw_trades("usdm_btcusdt_20240808.gz")
    t, price, qty, sell, pd_, qd = _arrays(trades)
    minutes = barmath.trade_bars(t, price, qty, sell, interval_ms=60_000)
    direct = barmath.trade_bars(t, price, qty, sell, interval_ms=300_000)
    rows = []
    for i in range(len(minutes)):
        rows.append({
            "bucket_ms": int(minutes.bucket_ms[i]), "open": barmath.from_units(minutes.open[i], pd_),
            "high": barmath.from_units(minutes.high[i], pd_), "low": barmath.from_units(minutes.low[i], pd_),
            "close": barmath.from_units(minutes.close[i], pd_), "trades": int(minutes.trades[i]), "book_samples": 0,
            "taker_buy_base": barmath.from_units(minutes.buy_base[i], qd),
            "taker_sell_base": barmath.from_units(minutes.sell_base[i], qd),
            "taker_buy_quote": barmath.from_units(minutes.buy_quote[i], pd_ + qd),
            "taker_sell_quote": barmath.from_units(minutes.sell_quote[i], pd_ + qd),
            "spread_bps": None, **{f"imbalance_{b}": None for b in barmath.BAND_NAMES},
        })
    rolled = barmath.rollup(rows, interval_ms=300_000)
    assert [r["bucket_ms"] for r in rolled] == direct.bucket_ms.tolist()
    for i, r in enumerate(rolled):
        assert r["open"] == barmath.from_units(direct.open[i], pd_)
        assert r["close"] == barmath.from_units(direct.close[i], pd_)
        assert r["high"] == barmath.from_units(direct.high[i], pd_)
        assert r["low"] == barmath.from_units(direct.low[i], pd_)
        assert r["trades"] == direct.trades[i]
        assert r["taker_sell_base"] == barmath.from_units(direct.sell_base[i], qd)
        assert r["delta_base"] == r["taker_buy_base"] - r["taker_sell_base"]
        volume = r["taker_buy_base"] + r["taker_sell_base"]
        assert r["taker_sell_ratio"] == float(r["taker_sell_base"] / volume)


def test_book_bars_mean_spread_and_imbalance_match_a_loop():
    rng = np.random.default_rng(7)
    n = 500
    t = np.sort(rng.integers(0, 600_000, n)).astype(np.int64)
    bid = 60_000 + rng.random(n)
    ask = bid + rng.random(n) * 2 + 0.01
    bid_depth = rng.random((n, 4)) * 1e6
    ask_depth = rng.random((n, 4)) * 1e6
    bid_depth[::17, 2] = 0
    ask_depth[::17, 2] = 0  # both sides empty in a band: undefined, must be skipped, not zero
    got = orderbook.book_sample_bars(t, bid, ask, bid_depth, ask_depth, interval_ms=60_000,
                                     bands=barmath.BAND_NAMES)
    for bucket, row in got.iterrows():
        idx = [k for k in range(n) if bucket <= t[k] < bucket + 60_000]
        spreads = [(ask[k] - bid[k]) / ((ask[k] + bid[k]) / 2) * 10_000 for k in idx]
        assert row["samples"] == len(idx)
        assert abs(row["spread_bps"] - sum(spreads) / len(spreads)) < 1e-9
        for j, band in enumerate(barmath.BAND_NAMES):
            vals = [(bid_depth[k, j] - ask_depth[k, j]) / (bid_depth[k, j] + ask_depth[k, j])
                    for k in idx if bid_depth[k, j] + ask_depth[k, j] > 0]
            assert abs(row[f"imbalance_{band}"] - sum(vals) / len(vals)) < 1e-12


def test_empty_inputs_give_empty_bars_without_nan():
    empty = np.zeros(0, dtype=np.int64)
    assert len(barmath.trade_bars(empty, empty, empty, empty.astype(bool), interval_ms=60_000)) == 0
    got = orderbook.book_sample_bars(empty, empty, empty, np.zeros((0, 4)), np.zeros((0, 4)), interval_ms=60_000,
                                     bands=barmath.BAND_NAMES)
    assert got["samples"].sum() == 0


def test_unsorted_trades_are_refused():
    t = np.array([2, 1], dtype=np.int64)
    one = np.ones(2, dtype=np.int64)
    try:
        barmath.trade_bars(t, one, one, np.zeros(2, bool), interval_ms=60_000)
    except ValueError as exc:
        assert "sorted" in str(exc)
    else:
        raise AssertionError("unsorted input accepted")


def test_huge_notional_falls_back_to_exact_integers():
    t = np.array([0, 1], dtype=np.int64)
    price = np.array([9 * 10**15, 9 * 10**15], dtype=np.int64)
    qty = np.array([10**12, 3], dtype=np.int64)
    got = barmath.trade_bars(t, price, qty, np.array([False, True]), interval_ms=60_000)
    assert int(got.buy_quote[0]) == 9 * 10**27
    assert int(got.sell_quote[0]) == 27 * 10**15


trade_strategy = st.lists(
    st.tuples(st.integers(0, 300_000), st.integers(1, 10**7), st.integers(1, 10**6), st.booleans()),
    min_size=1, max_size=200,
)


@given(trade_strategy)
def test_mirroring_taker_sides_swaps_buy_and_sell(trades):
    trades.sort(key=lambda r: r[0])
    t, p, q, s = (np.array(col) for col in zip(*trades, strict=True))
    a = barmath.trade_bars(t, p, q, s.astype(bool), interval_ms=60_000)
    b = barmath.trade_bars(t, p, q, ~s.astype(bool), interval_ms=60_000)
    assert (a.buy_base == b.sell_base).all()
    assert (a.sell_quote == b.buy_quote).all()
    assert (a.trades == b.trades).all()


@given(trade_strategy, st.integers(2, 50))
def test_scaling_sizes_scales_volumes_and_keeps_the_ratio(trades, k):
    trades.sort(key=lambda r: r[0])
    t, p, q, s = (np.array(col) for col in zip(*trades, strict=True))
    a = barmath.trade_bars(t, p, q, s.astype(bool), interval_ms=60_000)
    b = barmath.trade_bars(t, p, q * k, s.astype(bool), interval_ms=60_000)
    assert (b.sell_base == a.sell_base * k).all()
    for i in range(len(a)):
        total_a = int(a.buy_base[i] + a.sell_base[i])
        total_b = int(b.buy_base[i] + b.sell_base[i])
        assert Decimal(int(a.sell_base[i])) / total_a == Decimal(int(b.sell_base[i])) / total_b


def test_vwap_keeps_twelve_significant_digits_at_any_price_level():
    for quote, volume, want in (
        (Decimal("0.00000001234567891234567"), Decimal("1"), Decimal("1.23456789123E-8")),
        (Decimal("2683.697403039312"), Decimal("1"), Decimal("2683.69740304")),
        (Decimal("61837.63") * 3, Decimal("3"), Decimal("61837.63")),
        (Decimal("0.0014123456789012345") * 7, Decimal("7"), Decimal("0.00141234567890")),
    ):
        got = barmath.vwap_of(quote, volume)
        assert got == want and len(got.normalize().as_tuple().digits) <= 12
