"""Track-record math against hand-computed examples and plain-loop computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from apps.pressure import track_record as tr

M5 = 300_000


def bars(closes, lows, *, starts=None) -> pd.DataFrame:
    starts = list(range(len(closes))) if starts is None else starts
    return pd.DataFrame({"open": closes, "high": closes, "low": lows, "close": closes, "volume": 1.0,
                         "taker_sell_ratio": 0.5}, index=pd.Index([s * M5 for s in starts], dtype=np.int64))


# H = 10 min = the 2 bars after t; X = 1%. Close 100 -> threshold 99.0 (exact in binary: 100 * 0.99 == 99.0).
CLOSES = [100.0, 100.0, 100.0, 101.0, 99.2, 100.0, 100.0]
LOWS = [100.0, 99.5, 99.0, 99.01, 99.1, 98.5, 98.0]


def test_events_on_hand_made_series():
    ev = tr.drop_events(bars(CLOSES, LOWS), interval_ms=M5, horizon_minutes=10, drop_pct=1)
    # bar 0: lows of bars 1, 2 -> 99.0, exactly 1% below 100: an event, crossing in bar 2.
    # bar 1: bars 2, 3 -> 99.0: event. bar 2: bars 3, 4 -> 99.01 > 99.0, and its own low 99.0 does not count
    # (bar 5 at 98.5 lies 15 min after: outside H). bar 3 (close 101, threshold 99.99): bar 4 at 99.1: event.
    # bar 4 (close 99.2, threshold 98.208): bar 5 at 98.5 no, bar 6 (starting exactly t + H) at 98.0: event.
    # Bars 5 and 6 lack a whole horizon: left out.
    assert ev["has_horizon"].tolist() == [True, True, True, True, True, False, False]
    assert ev["event"].tolist() == [True, True, False, True, True, False, False]
    cross = ev["cross_ms"].tolist()
    assert [cross[i] for i in (0, 1, 3, 4)] == [2 * M5, 2 * M5, 4 * M5, 6 * M5]
    assert all(math.isnan(cross[i]) for i in (2, 5, 6))


def test_events_threshold_is_inclusive_and_strict_above():
    ev = tr.drop_events(bars([200.0, 200.0, 150.0], [200.0, 100.0, 150.0]), interval_ms=M5, horizon_minutes=5,
                        drop_pct=50)
    assert ev["event"].tolist()[:2] == [True, False]  # 100 == 200 * (1 - 50/100) counts
    ev = tr.drop_events(bars([200.0, 200.0, 150.0], [200.0, 100.000001, 150.0]), interval_ms=M5,
                        horizon_minutes=5, drop_pct=50)
    assert ev["event"].tolist()[:2] == [False, False]


def test_bars_and_events_count_the_window_start_inclusive_end_exclusive():
    frame = bars(CLOSES, LOWS)
    whole = tr.track_record(frame, interval_ms=M5, horizon_minutes=10, drop_pct=1, signals={})
    assert (whole["bars"], whole["events"]) == (5, 4)
    assert whole["base_rate"] == 4 / 5
    part = tr.track_record(frame, interval_ms=M5, horizon_minutes=10, drop_pct=1, start_ms=1 * M5,
                           end_ms=4 * M5, signals={})
    assert (part["bars"], part["events"]) == (3, 2)  # bars 1, 2, 3


def test_a_missing_bar_inside_the_horizon_holds_no_low():
    frame = bars([100.0, 100.0, 100.0, 100.0], [100.0, 99.5, 98.0, 99.5], starts=[0, 1, 3, 4])  # bar 2 missing
    ev = tr.drop_events(frame, interval_ms=M5, horizon_minutes=10, drop_pct=1)
    # bar 0: bars 1 and (missing) 2 -> 99.5: no event; bar 1: bars 2 (missing) and 3 -> 98.0: event.
    assert ev["event"].tolist() == [False, True, False, False]
    assert ev["has_horizon"].tolist() == [True, True, False, False]


def test_auc_counts_ties_half():
    y = np.array([1, 0, 1, 0, 0], dtype=float)
    score = np.array([0.8, 0.8, 0.3, 0.1, 0.3])
    # pairs (positive, negative): (.8,.8) 1/2, (.8,.1) 1, (.8,.3) 1, (.3,.8) 0, (.3,.1) 1, (.3,.3) 1/2 -> 4/6
    assert tr.auc(y, score) == pytest.approx(4 / 6, abs=1e-15)
    assert tr.auc(np.zeros(3), np.arange(3.0)) is None


def test_brier_and_brier_skill_by_hand():
    y = np.array([1.0, 0.0, 0.0, 0.0])
    p = np.array([0.5, 0.1, 0.2, 0.0])
    score, skill = tr.brier(y, p)
    # (0.25 + 0.01 + 0.04 + 0) / 4 = 0.075; base rate 0.25 -> reference 0.25 * 0.75 = 0.1875; 1 - 0.4 = 0.6
    assert score == pytest.approx(0.075, abs=1e-15)
    assert skill == pytest.approx(0.6, abs=1e-12)


def _plain_baselines(frame: pd.DataFrame, horizon_minutes: int) -> pd.DataFrame:
    close = dict(zip(frame.index.tolist(), frame["close"].tolist(), strict=True))
    n, k = 60 * 60_000 // M5, horizon_minutes * 60_000 // M5
    vol, ret = [], []
    for t in close:
        back = [t - j * M5 for j in range(n + 1)]
        if all(b in close for b in back):
            vol.append(sum(abs(math.log(close[back[j]] / close[back[j + 1]])) for j in range(n)) / n)
        else:
            vol.append(float("nan"))
        ret.append(-math.log(close[t] / close[t - k * M5]) if t - k * M5 in close else float("nan"))
    return pd.DataFrame({"baseline_taker_sell_ratio": frame["taker_sell_ratio"].tolist(),
                         "baseline_volatility": vol, "baseline_return": ret}, index=frame.index)


@pytest.mark.parametrize("horizon", [5, 15, 60])
def test_baselines_equal_a_plain_loop(horizon):
    rng = np.random.default_rng(7)
    starts = [s for s in range(300) if s not in (40, 41, 150)]  # gaps break the windows that span them
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.003, len(starts))))
    frame = bars(closes.tolist(), (closes * 0.999).tolist(), starts=starts)
    frame["taker_sell_ratio"] = rng.uniform(0, 1, len(starts))
    got = tr.baselines(frame, interval_ms=M5, horizon_minutes=horizon)
    want = _plain_baselines(frame, horizon)
    for col in tr.BASELINES:
        assert np.array_equal(np.isnan(got[col]), np.isnan(want[col])), col
        np.testing.assert_allclose(got[col], want[col], rtol=1e-12, atol=0, err_msg=col)
    assert got["baseline_volatility"].notna().sum() > 100


def _hand_signal():
    """20 bars. Drops (event runs): {5,6,7} crossing at bar 8, {12} at 13, {14,15} at 16, {18} at 19.
    Alerts: {2..6}, {9}, {11}, {15}, {19}."""
    t = np.arange(20, dtype=np.int64) * M5
    event = np.isin(np.arange(20), [5, 6, 7, 12, 14, 15, 18])
    cross = np.full(20, np.nan)
    cross[[5, 6, 7, 12, 14, 15, 18]] = np.array([8, 8, 8, 13, 16, 16, 19]) * M5
    alert = np.isin(np.arange(20), [2, 3, 4, 5, 6, 9, 11, 15, 19])
    return t, event, cross, alert


def test_lead_time_by_hand():
    t, event, cross, alert = _hand_signal()
    leads, drops = tr.lead_times_minutes(t, event, cross, alert, interval_ms=M5)
    # {5,6,7}: alert on bar 5, whose run began on bar 2 (final at 15 min); crossing at 40 min: 25 min.
    # {12}: the alert on 11 ended before it, the next (15) comes after the crossing: not warned.
    # {14,15}: alert on 15, final at 80 min, crossing at 80 min: 0 min. {18}: alert 19 too late.
    assert drops == 4
    assert sorted(leads.tolist()) == [0.0, 25.0]


def test_false_alarms_by_hand():
    t, event, _, alert = _hand_signal()
    # runs {2..6} and {15} hold events; {9}, {11}, {19} do not.
    assert tr.false_alarms(t, event, alert, interval_ms=M5) == 3
    gap = np.array([0, 1, 2, 4, 5], dtype=np.int64) * M5  # the gap splits one stretch into two runs
    assert tr.false_alarms(gap, np.zeros(5, dtype=bool), np.ones(5, dtype=bool), interval_ms=M5) == 2


def test_binary_signal_metrics_by_hand():
    t, event, cross, alert = _hand_signal()
    m = tr.signal_metrics(t, event, cross, alert.astype(float), tr.Signal("x", threshold=1.0), interval_ms=M5)
    assert m["precision"] == 3 / 9  # alert bars 2,3,4,5,6,9,11,15,19; events among them: 5, 6, 15
    assert m["recall"] == 3 / 7
    assert m["lead_time_minutes_median"] == 12.5
    assert m["false_alarms_per_day"] == pytest.approx(3 / (20 * 5 / 1440), rel=1e-12)
    assert m["lift"] == pytest.approx((3 / 9) / (7 / 20), rel=1e-12)
    assert "brier" not in m


def test_regime_flags_mean_at_least():
    flags = tr.regime_flags(pd.Series(["calm", "elevated", "high", "extreme", None]))
    assert flags["regime_elevated"].tolist()[:4] == [0.0, 1.0, 1.0, 1.0]
    assert flags["regime_high"].tolist()[:4] == [0.0, 0.0, 1.0, 1.0]
    assert flags["regime_extreme"].tolist()[:4] == [0.0, 0.0, 0.0, 1.0]
    assert flags.iloc[4].isna().all()


def test_api_shape_and_curves():
    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, 400)))
    frame = bars(closes.tolist(), (closes * (1 - rng.uniform(0, 0.01, 400))).tolist())
    frame["drop_risk"] = rng.uniform(0, 0.2, 400)
    frame["spi"] = rng.uniform(0, 100, 400)
    frame = frame.join(tr.regime_flags(pd.Series(rng.choice(list(tr.REGIMES), 400), index=frame.index)))
    out = tr.track_record(frame, interval_ms=M5, signals=tr.default_signals(drop_risk_threshold=0.1), curves=True)
    assert set(out["signals"]) == {"spi", "drop_risk", "regime_elevated", "regime_high", "regime_extreme",
                                   *tr.BASELINES}
    assert out["events"] > 0
    dr = out["signals"]["drop_risk"]
    assert {"auc", "brier", "brier_skill", "precision", "recall", "lead_time_minutes_median",
            "false_alarms_per_day"} <= set(dr)
    rel = out["curves"]["drop_risk"]["reliability"]
    assert sum(b["count"] for b in rel) == dr["bars"]
    roc = out["curves"]["spi"]["roc"]
    assert roc[0] == [0.0, 0.0] and roc[-1] == [1.0, 1.0]
