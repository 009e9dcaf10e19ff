"""Drop-risk forecast: no look-ahead, exact serialisation, the walk-forward schedule, and real history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from apps.pressure import forecast, track_record

M5 = 300_000
SPEC = forecast.DropRiskSpec(interval_ms=M5, horizon_minutes=15, drop_pct=1.0, components=("cvd_slope",))


def ms(day: str) -> int:
    return int(pd.Timestamp(day, tz="UTC").value // 1_000_000)


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    """45 days of 5m bars from 2023-12-25: a random walk whose volatility drifts (seeded), with trade
    counts, taker flow and one index component that is missing now and then; bar 2024-01-20 09:00 absent."""
    rng = np.random.default_rng(20240101)
    n = 45 * 288
    vol = 0.002 * np.exp(np.cumsum(rng.normal(0, 0.05, n)).clip(-1.5, 1.5))
    close = 40_000 * np.exp(np.cumsum(rng.normal(0, vol)))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0, vol, (2, n))) * close
    volume = rng.gamma(2.0, 50.0, n) * (1 + 200 * vol)
    frame = pd.DataFrame({
        "open": open_, "close": close,
        "high": np.maximum(open_, close) + wick[0], "low": np.minimum(open_, close) - wick[1],
        "volume": volume, "trades": np.round(volume * 20), "taker_sell_ratio": rng.beta(5, 5, n),
        "cvd_slope": np.where(rng.uniform(size=n) < 0.1, np.nan, rng.normal(0, 1, n)),
    }, index=pd.Index(ms("2023-12-25") + np.arange(n, dtype=np.int64) * M5))
    return frame.drop(index=ms("2024-01-20 09:00"))


@pytest.fixture(scope="module")
def walked(synthetic):
    return forecast.walk_forward(synthetic, spec=SPEC)


def test_refit_times_are_the_utc_month_starts_after_the_first_bar():
    assert forecast.refit_times(ms("2023-12-25"), ms("2024-03-01")) == [ms("2024-01-01"), ms("2024-02-01"),
                                                                        ms("2024-03-01")]
    assert forecast.refit_times(ms("2024-01-01"), ms("2024-01-31")) == []


def test_walk_forward_fits_from_the_first_month_with_enough_history(synthetic, walked):
    risk, models = walked
    # 2024-01-01 has 7 days of bars (< 28): no model; 2024-02-01 has ~38 days: the first model.
    assert list(models) == [ms("2024-02-01")]
    model = models[ms("2024-02-01")]
    t = risk.index.to_numpy()
    assert risk.loc[t < ms("2024-02-01"), "drop_risk"].isna().all()
    later = risk.loc[t >= ms("2024-02-01")]
    assert later["drop_risk"].between(0, 1).all() and later["drop_risk"].notna().all()
    assert (later["drop_risk_model"] == model.version).all()
    assert model.version.startswith("dr2-20240201-") and len(model.version) == len("dr2-20240201-") + 8
    assert model.train_events >= forecast.MIN_TRAIN_EVENTS
    assert "component_cvd_slope" in model.direction_features


@pytest.mark.parametrize("cut", ["2024-02-01 00:00", "2024-02-01 00:20", "2024-02-07 13:35"])
def test_deleting_history_after_t_leaves_the_prediction_for_t_unchanged(synthetic, walked, cut):
    t = ms(cut)
    risk, _ = walked
    cut_risk, _ = forecast.walk_forward(synthetic.loc[:t], spec=SPEC)
    assert cut_risk.index[-1] == t
    assert cut_risk["drop_risk"].iloc[-1] == risk.loc[t, "drop_risk"]  # exactly, not approximately
    assert cut_risk["drop_risk_model"].iloc[-1] == risk.loc[t, "drop_risk_model"] != ""
    full_features = forecast.features(synthetic, spec=SPEC).loc[t]
    cut_features = forecast.features(synthetic.loc[:t], spec=SPEC).iloc[-1]
    pd.testing.assert_series_equal(cut_features, full_features, check_exact=True, check_names=False)


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_features_up_to_t_ignore_any_change_after_t(synthetic, factor):
    """Every row up to t, not only the last: a forward-looking window anywhere shows up here."""
    t = ms("2024-01-28 12:00")
    changed = synthetic.copy()
    later = changed.index > t
    changed.loc[later, ["open", "high", "low", "close"]] *= factor
    changed.loc[later, ["volume", "trades"]] *= 3 * factor
    changed.loc[later, ["taker_sell_ratio", "cvd_slope"]] = 1.0
    before = forecast.features(synthetic, spec=SPEC).loc[:t]
    after = forecast.features(changed, spec=SPEC).loc[:t]
    assert before.notna().all(axis=1).sum() > 5000
    pd.testing.assert_frame_equal(after, before, check_exact=True)


def test_scoring_only_the_newest_bars_equals_the_whole_computation(synthetic, walked):
    _, models = walked
    model = next(iter(models.values()))
    whole = forecast.features(synthetic, spec=SPEC)
    for last in (1, 7, 400):
        newest = forecast.features(synthetic, spec=SPEC, last=last)
        assert newest.index.equals(synthetic.index[-last:])
        pd.testing.assert_frame_equal(newest, whole.iloc[-last:], check_exact=False, rtol=1e-12, atol=1e-12)
    recent = synthetic.loc[synthetic.index[-1] - forecast.HISTORY_DAYS * forecast.DAY_MS:]
    np.testing.assert_allclose(model.predict(recent, last=3), model.predict(synthetic).iloc[-3:], rtol=1e-12)


def test_seasonal_volatility_equals_a_plain_loop(synthetic):
    """For bar t: the mean |log return| of the 3 bars after t's time of day, on each of the last 28 days
    that has them (>= 3 such days), averaged; the log of it (+ 1e-5)."""
    frame = synthetic.iloc[: 6 * 288]  # 6 days, with the 2024-01-20 gap outside; make one inside
    frame = frame.drop(index=frame.index[700])
    close = dict(zip(frame.index.tolist(), frame["close"].tolist(), strict=True))

    def abs_ret(s):
        return abs(np.log(close[s] / close[s - M5])) if s in close and s - M5 in close else None

    want = []
    for t in frame.index.tolist():
        means = []
        for d in range(1, 29):
            rets = [r for j in (1, 2, 3) if (r := abs_ret(t - d * 86_400_000 + j * M5)) is not None]
            if rets:
                means.append(sum(rets) / len(rets))
        want.append(np.log(sum(means) / len(means) + 1e-5) if len(means) >= 3 else np.nan)
    got = forecast.features(frame, spec=SPEC)["log_seasonal_abs_return"].to_numpy()
    assert np.array_equal(np.isnan(got), np.isnan(want)) and (~np.isnan(got)).sum() > 800
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_model_json_round_trip_predicts_identically(synthetic, walked):
    _, models = walked
    model = next(iter(models.values()))
    text = model.to_json()
    again = forecast.DropRiskModel.from_json(text)
    assert again.to_json() == text and again.version == model.version
    window = synthetic.loc[ms("2024-02-01"):]
    pd.testing.assert_series_equal(again.predict(window), model.predict(window), check_exact=True)


def test_fit_uses_only_bars_whose_horizon_ended(synthetic):
    end = ms("2024-02-01")
    model = forecast.fit(synthetic, spec=SPEC, train_end_ms=end)
    same = forecast.fit(synthetic.loc[:end - M5], spec=SPEC, train_end_ms=end)  # nothing from `end` on
    assert model.to_json() == same.to_json()
    assert forecast.fit(synthetic.loc[:ms("2024-01-10")], spec=SPEC, train_end_ms=ms("2024-01-10")) is None


def test_linear_stage_equals_scikit_learn():
    rng = np.random.default_rng(5)
    x = rng.normal(3, 2, (500, 4))
    y = (x @ [1.0, -0.5, 0.2, 0.0] + rng.normal(0, 1, 500) > 2).astype(int)
    scaler = StandardScaler().fit(x)
    clf = LogisticRegression().fit(scaler.transform(x), y)
    stage = forecast.Linear.from_sklearn(scaler, clf)
    np.testing.assert_allclose(stage(x), clf.decision_function(scaler.transform(x)), rtol=1e-12, atol=1e-12)


def test_beats_trailing_volatility_on_real_btcusdt(shared_klines):
    """Real history, walk-forward: out of sample the forecast ranks drops better than trailing volatility
    and has positive Brier skill (the full figures are in `python -m bench.track_record`)."""
    bars = shared_klines.loc[:ms("2024-02-01") - 1]  # 2023-10 .. 2024-01: models from 2023-12-01
    risk, models = forecast.walk_forward(bars, spec=forecast.DropRiskSpec(interval_ms=M5))
    assert list(models) == [ms("2023-12-01"), ms("2024-01-01")]
    out = track_record.track_record(bars.join(risk[["drop_risk"]]), interval_ms=M5, start_ms=ms("2023-12-01"),
                                    signals={"drop_risk": track_record.Signal("drop_risk", probability=True),
                                             "baseline_volatility": track_record.Signal("baseline_volatility")})
    s = out["signals"]
    assert out["events"] > 150
    assert s["drop_risk"]["auc"] > s["baseline_volatility"]["auc"] + 0.02
    assert s["drop_risk"]["brier_skill"] > 0.03


@pytest.fixture(scope="module")
def shared_klines():
    from bench.track_record import DATA, read_klines

    return read_klines(DATA)


def test_walk_forward_over_less_than_a_month_fits_nothing_and_says_so():
    index = pd.Index(np.arange(200, dtype=np.int64) * 300_000 + 1_700_006_400_000)
    frame = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0,
                          "taker_sell_ratio": 0.5}, index=index)
    predicted, models = forecast.walk_forward(frame, spec=forecast.DropRiskSpec(interval_ms=300_000))
    assert models == {} and predicted["drop_risk"].isna().all()


def test_reliability_of_nothing_is_empty():
    assert track_record.reliability(np.array([]), np.array([])) == []


@pytest.mark.parametrize(("interval_ms", "configured", "expected"), [
    (60_000, 15, 15), (300_000, 15, 15), (300_000, 5, 5), (3_600_000, 15, 60), (3_600_000, 60, 60),
    (3_600_000, 90, 120), (300_000, 7, 10),
])
def test_the_forecast_horizon_is_whole_bars_of_the_interval(interval_ms, configured, expected):
    from apps.pressure.forecast import horizon_minutes_for

    assert horizon_minutes_for(interval_ms=interval_ms, configured=configured) == expected
