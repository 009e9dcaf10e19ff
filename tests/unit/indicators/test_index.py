"""Robust z-scores, weights, the SPI, regimes and explanations."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.pressure.indicators import index
from apps.pressure.indicators.orderbook import book_sample_bars
from apps.pressure.indicators.orderflow import trade_flow_bars

from .feeds import quotes_of, trades_of


def robust_z_by_hand(values: list[float], window: int, min_periods: int, clip: float) -> list[float]:
    out = []
    for i, x in enumerate(values):
        prior = [v for v in values[max(0, i - window): i] if not math.isnan(v)]
        if len(prior) < min_periods or math.isnan(x):
            out.append(math.nan)
            continue
        med = statistics.median(prior)
        dev = [abs(v - med) for v in prior]
        mad = statistics.median(dev)
        scale = 1.4826 * mad if mad > 0 else 1.2533 * sum(dev) / len(dev)
        if scale > 0:
            out.append(max(-clip, min(clip, (x - med) / scale)))
        else:
            out.append(0.0 if x == med else math.nan)
    return out


@pytest.fixture(scope="module")
def real_components() -> pd.DataFrame:
    """The shipped components (apps.pressure.spi) of 1-second bars of a real futures recording."""
    from apps.pressure import spi as spi_math

    t, q = trades_of("usdm_btcusdt_20240808.gz"), quotes_of("usdm_btcusdt_20240808.gz")
    flow = trade_flow_bars(t.time_ms, t.price, t.qty, t.taker_sell, interval_ms=1_000)
    # Top of book as the only band: depth = price x size at the best bid and ask.
    book = book_sample_bars(q.time_ms, q.bid_px, q.ask_px, q.bid_px * q.bid_qty, q.ask_px * q.ask_qty,
                            interval_ms=1_000, bands=("l1",), index=flow.index)
    bars = pd.DataFrame({"close": flow["close"], "taker_buy_base": flow["buy"], "taker_sell_base": flow["sell"],
                         "buy_trades": flow["buy_trades"], "sell_trades": flow["sell_trades"],
                         "large_trade_sell_share": np.nan, "ofi": np.nan, "imbalance_0_1pct": book["imbalance_l1"],
                         "spread_bps": book["spread_bps"], "bid_depth_0_5pct": book["bid_depth_l1"]}, index=flow.index)
    return spi_math.components_from_bars(bars, interval_ms=1_000)



def test_robust_z_matches_a_loop_on_real_components(real_components):
    window, min_periods, clip = 60, 20, 4.0
    got = index.robust_z(real_components, window=window, min_periods=min_periods, clip=clip)
    checked = 0
    for col in real_components.columns:
        want = robust_z_by_hand(real_components[col].tolist(), window, min_periods, clip)
        np.testing.assert_allclose(got[col].to_numpy(), want, rtol=1e-9, atol=1e-12, err_msg=col)
        checked += int(np.isfinite(want).sum())
    assert checked > 2_000  # seven components over ~6 minutes of 1-second bars
    # Bars of the mostly-empty large-trade share exercise the mean-absolute-deviation fallback.
    tail = got.tail(5)
    assert tail.equals(index.robust_z(real_components, window=window, min_periods=min_periods, last=5))


series_values = st.lists(
    st.one_of(st.sampled_from([0.0, 1.0, math.nan]), st.floats(-1e6, 1e6, allow_nan=False)), max_size=120,
)


@settings(max_examples=100, deadline=None)
@given(series_values, st.integers(1, 30), st.integers(1, 10))
def test_robust_z_never_leaks_inf_and_respects_the_clip(values, window, min_periods):
    z = index.robust_z(pd.Series(values, dtype=float), window=window, min_periods=min_periods, clip=4.0)
    arr = z.to_numpy()
    assert len(arr) == len(values)
    assert not np.isinf(arr).any()
    assert (np.abs(arr[np.isfinite(arr)]) <= 4.0).all()
    assert np.isnan(arr[: min(min_periods, len(arr))]).all()


def test_constant_window_gives_zero_at_the_level_and_nan_elsewhere():
    z = index.robust_z(pd.Series([5.0] * 10 + [5.0, 6.0]), window=10, min_periods=3)
    assert np.isnan(z.iloc[:3]).all() and z.iloc[3:11].eq(0.0).all()
    assert math.isnan(z.iloc[11])
    empty = index.robust_z(pd.Series([], dtype=float))
    assert empty.empty
    # MAD 0 but not constant: mean absolute deviation takes over (finite, clipped).
    z = index.robust_z(pd.Series([0.0] * 8 + [1.0, 0.0, 10.0]), window=10, min_periods=3)
    assert z.iloc[-1] == 4.0


component_frames = st.integers(20, 80).flatmap(lambda n: st.lists(
    st.lists(st.one_of(st.floats(-100, 100, allow_nan=False), st.just(math.nan)), min_size=n, max_size=n),
    min_size=5, max_size=5,
))
DIRECTIONAL = ["taker_sell_ratio", "cvd_slope", "ofi", "imbalance", "trade_count_imbalance"]
WEIGHTS = {"taker_sell_ratio": 1.0, "cvd_slope": 1.0, "ofi": 1.0, "imbalance": 1.0, "trade_count_imbalance": 0.5}


def frame_of(columns) -> pd.DataFrame:
    return pd.DataFrame(dict(zip(DIRECTIONAL, columns, strict=True)), dtype=float)


@settings(max_examples=40, deadline=None)
@given(component_frames)
def test_mirroring_flips_the_spi_around_50(columns):
    frame = frame_of(columns)
    frame["taker_sell_ratio"] = (frame["taker_sell_ratio"] + 100) / 200  # a ratio in [0, 1]
    mirrored = -frame
    mirrored["taker_sell_ratio"] = 1 - frame["taker_sell_ratio"]
    a = index.spi(frame, weights=WEIGHTS, window=10, min_periods=3)
    b = index.spi(mirrored, weights=WEIGHTS, window=10, min_periods=3)
    np.testing.assert_allclose(b.spi.to_numpy() - 50, -(a.spi.to_numpy() - 50), atol=1e-6)
    np.testing.assert_allclose(b.contribution.to_numpy(), -a.contribution.to_numpy(), atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(component_frames, st.integers(0, 4))
def test_weights_renormalise_over_available_components(columns, dropped):
    frame = frame_of(columns)
    frame[DIRECTIONAL[dropped]] = math.nan  # this component's feed is down
    r = index.spi(frame, weights=WEIGHTS, window=10, min_periods=3)
    avail = r.z.notna()
    sums = r.weight.sum(axis=1, skipna=True)
    assert np.allclose(sums[avail.any(axis=1)], 1.0)
    assert r.weight[DIRECTIONAL[dropped]].isna().all()
    assert all(DIRECTIONAL[dropped] in m for m in r.missing)
    z, contribution, missing = r.z.to_numpy(), r.contribution.to_numpy(), list(r.missing)
    w = np.array([WEIGHTS[c] for c in DIRECTIONAL])
    for i in range(len(r)):
        ok = np.isfinite(z[i])
        assert missing[i] == [c for c, a in zip(DIRECTIONAL, ok, strict=True) if not a]
        if not ok.any():
            assert math.isnan(r.spi.iloc[i]) and r.regime.iloc[i] is None
            continue
        logit = np.nansum(contribution[i])
        assert r.spi.iloc[i] == pytest.approx(100 / (1 + math.exp(-logit)))
        assert logit == pytest.approx(float((w[ok] * z[i][ok]).sum() / w[ok].sum()), abs=1e-12)
    assert not np.isinf(r.to_frame().drop(columns=["regime", "missing"]).to_numpy(dtype=float)).any()


def test_regime_boundaries():
    got = index.regime(pd.Series([0.0, 39.999, 40.0, 59.999, 60.0, 79.999, 80.0, 100.0, math.nan]))
    assert got.tolist() == ["calm", "calm", "elevated", "elevated", "high", "high", "extreme", "extreme", None]
    assert index.regime(pd.Series([10.0, 50.0]), thresholds=(5.0, 50.0, 90.0)).tolist() == ["elevated", "high"]
    assert [index.regime_of(v) for v in (39.999, 40, 60, 80)] == ["calm", "elevated", "high", "extreme"]


def test_signs_orient_every_weighted_component_and_weights_are_positive():
    assert set(index.DEFAULT_WEIGHTS) <= set(index.SIGNS) <= set(index.LABELS)
    assert all(w > 0 for w in index.DEFAULT_WEIGHTS.values())
    assert index.SIGNS["imbalance"] == index.SIGNS["ofi"] == index.SIGNS["cvd_slope"] == -1
    assert index.SIGNS["trade_count_imbalance"] == -1 and "stablecoin_netflow" not in index.DEFAULT_WEIGHTS
    with pytest.raises(KeyError, match="no sign"):
        index.spi(pd.DataFrame({"mystery": [1.0]}), weights={"mystery": 1.0})


def test_explain_names_the_shares_of_selling():
    weights = {"taker_sell_ratio": 1.0, "long_liquidations": 1.0, "netflow_z": 0.75, "ofi": 1.0}
    k = math.log(78 / 22) * 3.75  # logit of 0.78 times the weight total
    z = pd.DataFrame({"taker_sell_ratio": [0.45 * k], "long_liquidations": [0.30 * k], "netflow_z": [k / 3],
                      "ofi": [0.0]}, index=pd.Index([1_000], name="bucket_ms"))
    z["ofi"] = -0.0
    spi, weight, contribution, missing = index.combine(z, weights=weights)
    result = index.SpiResult(spi, index.regime(spi), z, z, weight, contribution, missing, weights)
    assert index.explain(result) == "SPI 78 (high): 45% taker selling, 30% long liquidations, 25% exchange inflow"
    calm = index.SpiResult(spi * 0 + 20, index.regime(spi * 0 + 20), z, -z, weight, -contribution, missing, weights)
    assert index.explain(calm) == "SPI 20 (calm): no component points to selling"
    none = index.spi(pd.DataFrame({"ofi": [1.0]}), weights={"ofi": 1.0})
    assert "n/a" in index.explain(none)
    assert index.explain(none, show_missing=False).startswith("SPI n/a")


def test_spi_is_deterministic_and_last_rows_equal_the_full_computation(real_components):
    a = index.spi(real_components, window=60, min_periods=20)
    b = index.spi(real_components.copy(), window=60, min_periods=20)
    pd.testing.assert_frame_equal(a.to_frame(), b.to_frame(), check_exact=True)
    tail = index.spi(real_components, window=60, min_periods=20, last=7)
    pd.testing.assert_frame_equal(tail.to_frame(), a.to_frame().tail(7), check_exact=True)
    assert a.spi.notna().sum() > 250
    assert a.spi.dropna().between(100 * index.logistic(-4), 100 * index.logistic(4)).all()


def test_rows_as_dicts_agree_with_the_flat_frame(real_components):
    result = index.spi(real_components, window=60, min_periods=20)
    flat = result.to_frame()
    picked = [result.spi.index[i] for i in (0, 100, len(result) - 1)] + [-12345]  # the last is not a bar
    rows = result.rows(picked)
    assert [r["bucket_ms"] for r in rows] == picked[:3]
    assert rows[-1] == result.row()
    for row in rows:
        expected = flat.loc[row["bucket_ms"]]
        assert row["spi"] == (None if math.isnan(expected["spi"]) else expected["spi"])
        assert row["regime"] == expected["regime"]
        assert row["missing"] == expected["missing"]
        for name, c in row["components"].items():
            for key in ("value", "z", "contribution"):
                cell = expected[f"{key}_{name}"]
                assert c[key] == (None if math.isnan(cell) else cell), (row["bucket_ms"], name, key)
    assert sum(c["z"] is not None for r in rows for c in r["components"].values()) > 0


def test_stored_bar_spi_of_the_last_bars_equals_the_full_computation_across_gaps(settings):
    from apps.pressure import spi as spi_math

    settings.SPI_MIN_PERIODS = 20
    rng = np.random.default_rng(7)
    minutes = np.delete(np.arange(400), [50, 51, 52, 390, 396])  # missing minutes, two of them near the end
    bars = pd.DataFrame({
        "close": 60_000 + np.cumsum(rng.normal(0, 20, len(minutes))),
        "taker_buy_base": rng.gamma(2.0, 3.0, len(minutes)), "taker_sell_base": rng.gamma(2.0, 3.0, len(minutes)),
        "buy_trades": rng.integers(50, 300, len(minutes)), "sell_trades": rng.integers(50, 300, len(minutes)),
        "large_trade_sell_share": rng.uniform(0, 1, len(minutes)), "ofi": rng.normal(0, 5, len(minutes)),
        "imbalance_0_1pct": rng.uniform(-1, 1, len(minutes)), "spread_bps": rng.uniform(0.1, 2, len(minutes)),
        "bid_depth_0_5pct": rng.uniform(1e6, 2e6, len(minutes)),
    }, index=1_700_000_000_000 + minutes * 60_000).astype(np.float64)
    full = spi_math.spi_rows(bars, last=len(bars))
    assert len(full) == len(bars)
    for last in (1, 3, 8):
        assert spi_math.spi_rows(bars, last=last) == full[-last:]
    assert full[-1]["spi"] is not None


def test_calibrated_thresholds_are_walk_forward_percentiles_of_the_days_before():
    day = 86_400_000
    # Day 0: values 0..999 spread over the day; day 1: values 1000..1999; one bar per 86.4 s.
    idx = np.arange(2000) * (day // 1000)
    spi = pd.Series(np.arange(2000, dtype=float), index=idx)
    got = index.rolling_thresholds(spi, window_ms=30 * day, refresh_ms=day, min_bars=500, defaults=(1.0, 2.0, 3.0))
    # Day 0 has no history: defaults. Day 1 sees day 0 only (never its own values).
    assert got.iloc[0].tolist() == [1.0, 2.0, 3.0] and got.iloc[999].tolist() == [1.0, 2.0, 3.0]
    assert got.iloc[1000].tolist() == pytest.approx([np.quantile(np.arange(1000), q) for q in (0.8, 0.95, 0.99)])
    regimes = index.regimes_by(pd.Series([700.0, 900.0, 960.0, 995.0], index=idx[1000:1004]), got)
    assert regimes.tolist() == ["calm", "elevated", "high", "extreme"]


def test_thresholds_need_enough_history():
    assert index.thresholds_of([50.0] * 499, min_bars=500, defaults=(1.0, 2.0, 3.0)) == ((1.0, 2.0, 3.0), 499)
    assert index.thresholds_of([np.nan] * 600, min_bars=500, defaults=(1.0, 2.0, 3.0))[1] == 0
