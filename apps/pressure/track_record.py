"""Track record: how well each signal foresaw drops on one instrument's final bars (pure math).

API (all times are bar starts in UTC epoch milliseconds; ``frame`` is indexed by them, ascending, on
the instrument's bar grid, and holds open/high/low/close/volume/taker_sell_ratio plus one score
column per signal):

- ``drop_events(frame, interval_ms=, horizon_minutes=, drop_pct=)`` -> DataFrame
  ``has_horizon``, ``event``, ``cross_ms`` per bar.
- ``baselines(frame, interval_ms=, horizon_minutes=)`` -> DataFrame with the three baseline columns.
- ``regime_flags(regime)`` -> DataFrame ``regime_elevated`` / ``regime_high`` / ``regime_extreme``
  (1.0 when the regime is at least that one).
- ``default_signals(drop_risk_threshold=)`` -> the issue's signal set (``Signal`` per name).
- ``track_record(frame, interval_ms=, horizon_minutes=15, drop_pct=1.0, start_ms=, end_ms=,
  signals=, curves=False)`` -> the API-shaped dict ``bars``, ``events``, ``base_rate``, ``signals``
  (and ``curves``: ROC points and reliability bins per signal when asked).

Definitions (issue #16, item 4):

- Event at bar t (start s_t, interval D) for horizon H and drop X: the lowest low of the bars
  starting in (s_t, s_t + H] is <= close(t) * (1 - X/100). Why that interval: a signal on bar t is
  known when t is final, at s_t + D; "the bars after t within H" are then the H/D bars that follow
  it, the last one ending at s_t + D + H, exactly H after the moment of the signal. Bar t itself
  (whose low may sit below its own close) is not after t. A drop exactly at X counts.
- A bar has the whole horizon when the frame holds a bar starting at or after s_t + H: history
  reaches the end of its horizon. The last H/D bars of the frame are left out. A bar missing inside
  a horizon (no trades in that bucket) holds no low and cannot make the event.
- ``bars`` counts the bars starting in [start, end) that have the whole horizon; the horizon may
  reach past ``end`` when the frame holds those bars (pass H of bars beyond ``end``).
- AUC: Mann-Whitney, ties count half (scikit-learn's ``roc_auc_score`` is exactly that).
- Brier = mean (p - y)^2 over the scored bars; Brier skill = 1 - Brier / (b (1 - b)), b the base
  rate over the same bars (the Brier score of always predicting it). Probabilistic signals only.
- A signal with a threshold alerts on bars with score >= threshold. Precision = events among alert
  bars / alert bars (compare it with ``base_rate``; ``lift`` = precision / base rate); recall =
  alert bars among event bars / event bars.
- Runs: an uninterrupted run is a maximal stretch of consecutive grid bars (no gap) with the flag
  set. A *drop* is a run of event bars; its first bar e is the first bar from which it was in the
  horizon, and it happens at ``cross_ms`` of e: the start of the first bar after e whose low is at
  or below close(e) * (1 - X/100) (the earliest moment the threshold can have been crossed).
- Lead time of a drop (minutes): the signal warned it when it alerts on a bar w with s_e <= s_w and
  s_w + D <= cross (final before the crossing could start); the alert time is the end (s + D) of
  the first bar of w's uninterrupted alert run, which may begin before e. Lead = cross - alert
  time, >= 0. ``lead_time_minutes_median`` is the median over warned drops (None if none).
- False alarm: an alert run (its onset is when an alert would fire) containing no event bar, i.e.
  from none of its bars did the price fall X% within H. ``false_alarms_per_day`` = false alarms /
  (scored bars * D / 1 day).
- Baselines: ``baseline_taker_sell_ratio`` = the bar's taker sell ratio; ``baseline_volatility`` =
  mean |log(close_i / close_i-1)| over the bars i starting in (s_t - 60 min, s_t] (the 60 minutes
  ending at t's close; 12 returns on 5m bars), NaN unless all those bars and the one before exist;
  ``baseline_return`` = -log(close_t / close_(t - H)), NaN unless the bar starting at s_t - H exists.

Each signal is scored on the bars in the window that have the whole horizon and a non-NaN score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

MINUTE_MS = 60_000
DAY_MS = 86_400_000
VOLATILITY_WINDOW_MINUTES = 60
REGIMES = ("calm", "elevated", "high", "extreme")
BASELINES = ("baseline_taker_sell_ratio", "baseline_volatility", "baseline_return")
DROP_RISK_ALERT = 0.10  # default alert level of the drop-risk probability (about 10x the 1%/15 min base rate)


@dataclass(frozen=True)
class Signal:
    column: str
    probability: bool = False  # a calibrated probability of the event: Brier and Brier skill apply
    threshold: float | None = None  # alerts on score >= threshold: precision, recall, lead time, false alarms


def default_signals(*, drop_risk_threshold: float | None = DROP_RISK_ALERT) -> dict[str, Signal]:
    """The issue's signal set; the frame needs columns spi, drop_risk, regime_* (``regime_flags``); the
    baselines are computed. The regimes and drop risk >= ``drop_risk_threshold`` are the alerting signals."""
    signals = {
        "spi": Signal("spi"),
        "drop_risk": Signal("drop_risk", probability=True, threshold=drop_risk_threshold),
    }
    for name in REGIMES[1:]:
        signals[f"regime_{name}"] = Signal(f"regime_{name}", threshold=1.0)
    signals.update({name: Signal(name) for name in BASELINES})
    return signals


def regime_flags(regime: pd.Series) -> pd.DataFrame:
    """1.0 where the regime label is at least elevated / high / extreme, 0.0 below, NaN where unknown."""
    level = regime.map({name: i for i, name in enumerate(REGIMES)}).astype(np.float64)
    return pd.DataFrame({f"regime_{name}": (level >= i).astype(np.float64).where(level.notna())
                         for i, name in enumerate(REGIMES) if i > 0}, index=regime.index)


def _steps(minutes: float, interval_ms: int) -> int:
    steps, rest = divmod(round(minutes * MINUTE_MS), interval_ms)
    if rest or steps < 1:
        raise ValueError(f"{minutes} min is not a whole number of {interval_ms // MINUTE_MS} min bars")
    return steps


def _on_grid(frame: pd.DataFrame, interval_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """(grid of bar starts from the first to the last, position of each grid start in frame or -1)."""
    t = frame.index.to_numpy(dtype=np.int64)
    if len(t) and (np.any(np.diff(t) <= 0) or np.any((t - t[0]) % interval_ms)):
        raise ValueError("bar starts must be ascending on the interval grid")
    grid = np.arange(t[0], t[-1] + 1, interval_ms, dtype=np.int64) if len(t) else t
    pos = np.full(len(grid), -1, dtype=np.int64)
    pos[(t - t[0]) // interval_ms if len(t) else t] = np.arange(len(t))
    return grid, pos


def drop_events(frame: pd.DataFrame, *, interval_ms: int, horizon_minutes: float, drop_pct: float) -> pd.DataFrame:
    """Per bar: has_horizon (bool), event (bool, False without horizon), cross_ms (float, NaN if no event)."""
    k = _steps(horizon_minutes, interval_ms)
    grid, pos = _on_grid(frame, interval_ms)
    low = np.full(len(grid), np.inf)
    low[pos >= 0] = frame["low"].to_numpy(dtype=np.float64)[pos[pos >= 0]]
    close = np.full(len(grid), np.nan)
    close[pos >= 0] = frame["close"].to_numpy(dtype=np.float64)[pos[pos >= 0]]
    threshold = close * (1 - drop_pct / 100)
    cross = np.full(len(grid), np.nan)
    # Latest first, so the earliest crossing bar wins.
    for j in range(k, 0, -1):
        later = np.full(len(grid), np.inf)
        later[:-j] = low[j:]
        cross = np.where(later <= threshold, (grid + j * interval_ms).astype(np.float64), cross)
    has_horizon = grid + k * interval_ms <= grid[-1] if len(grid) else np.zeros(0, dtype=bool)
    event = has_horizon & ~np.isnan(cross)
    keep = pos >= 0
    return pd.DataFrame({"has_horizon": has_horizon[keep], "event": event[keep],
                         "cross_ms": np.where(event, cross, np.nan)[keep]}, index=frame.index)


def baselines(frame: pd.DataFrame, *, interval_ms: int, horizon_minutes: float) -> pd.DataFrame:
    """The three baselines of the issue, per bar, from bars up to t only (NaN where history is short)."""
    n_vol = _steps(VOLATILITY_WINDOW_MINUTES, interval_ms)
    k = _steps(horizon_minutes, interval_ms)
    t = frame.index.to_numpy(dtype=np.int64)
    close = pd.Series(frame["close"].to_numpy(dtype=np.float64))

    def gap_free(steps: int) -> np.ndarray:  # bar t and the `steps` bars before it all exist
        back = np.full(len(t), -1, dtype=np.int64)
        back[steps:] = t[:-steps] if steps < len(t) else back[steps:]
        return (back >= 0) & (t - back == steps * interval_ms)

    # log of the ratio, not a difference of logs: no cancellation on small moves
    abs_ret = np.log(close / close.shift(1)).abs()
    volatility = abs_ret.rolling(n_vol, min_periods=n_vol).mean().where(gap_free(n_vol))
    back = np.searchsorted(t, t - k * interval_ms)  # the bar starting exactly H before, wherever it sits
    found = (back < len(t)) & (t[np.minimum(back, len(t) - 1)] == t - k * interval_ms)
    before = np.where(found, close.to_numpy()[np.minimum(back, len(t) - 1)], np.nan)
    ret = np.log(close.to_numpy() / before)
    return pd.DataFrame({
        "baseline_taker_sell_ratio": frame["taker_sell_ratio"].to_numpy(dtype=np.float64),
        "baseline_volatility": volatility.to_numpy(),
        "baseline_return": -ret,
    }, index=frame.index)


def _runs(flag: np.ndarray, t: np.ndarray, interval_ms: int) -> np.ndarray:
    """Run id per bar (0 where the flag is off): consecutive flagged bars with no gap share an id."""
    prev_on = np.r_[False, flag[:-1]]
    contiguous = np.r_[False, np.diff(t) == interval_ms]
    onset = flag & ~(prev_on & contiguous)
    return np.where(flag, np.cumsum(onset), 0)


def lead_times_minutes(t: np.ndarray, event: np.ndarray, cross_ms: np.ndarray, alert: np.ndarray, *,
                       interval_ms: int) -> tuple[np.ndarray, int]:
    """(lead time in minutes of each warned drop, number of drops); see the module docstring."""
    drop_id = _runs(event, t, interval_ms)
    firsts = np.flatnonzero(event & (np.r_[0, drop_id[:-1]] != drop_id))
    alert_at = np.flatnonzero(alert)
    if not len(firsts) or not len(alert_at):
        return np.zeros(0), len(firsts)
    alert_run = _runs(alert, t, interval_ms)
    onset_of_run = t[alert_at][np.r_[True, np.diff(alert_run[alert_at]) != 0]]  # run r -> onset_of_run[r - 1]
    nxt = np.searchsorted(alert_at, firsts)  # first alert bar at or after e
    found = nxt < len(alert_at)
    w = alert_at[np.minimum(nxt, len(alert_at) - 1)]
    warned = found & (t[w] + interval_ms <= cross_ms[firsts])
    alert_time = onset_of_run[alert_run[w[warned]] - 1] + interval_ms
    return (cross_ms[firsts][warned] - alert_time) / MINUTE_MS, len(firsts)


def false_alarms(t: np.ndarray, event: np.ndarray, alert: np.ndarray, *, interval_ms: int) -> int:
    """Alert runs none of whose bars is an event bar."""
    run = _runs(alert, t, interval_ms)
    if not run.max(initial=0):
        return 0
    hits = np.bincount(run, weights=event.astype(np.float64), minlength=run.max() + 1)[1:]
    return int(np.count_nonzero(hits == 0))


def brier(y: np.ndarray, p: np.ndarray) -> tuple[float, float | None]:
    """(Brier score, Brier skill vs always predicting the base rate of y; None when y is constant)."""
    score = float(np.mean((p - y) ** 2))
    base = float(np.mean(y))
    reference = base * (1 - base)
    return score, (1 - score / reference if reference > 0 else None)


def auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """Mann-Whitney AUC with ties counting half; None without both classes."""
    from sklearn.metrics import roc_auc_score  # at use: see _fit_rows in forecast.py

    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else None


def roc_points(y: np.ndarray, score: np.ndarray, *, points: int = 201) -> list[list[float]]:
    """[fpr, tpr] corners of the ROC curve from (0, 0) to (1, 1), at most ``points`` of them (evenly picked)."""
    from sklearn.metrics import roc_curve  # at use: see _fit_rows in forecast.py

    if not 0 < y.sum() < len(y):
        return []
    fpr, tpr, _ = roc_curve(y, score)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(points, len(fpr))).round().astype(int))
    return [[float(fpr[i]), float(tpr[i])] for i in keep]


def reliability(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> list[dict]:
    """Equal-count bins of the predicted probability: mean predicted, observed frequency, count."""
    if not len(p):
        return []
    order = np.argsort(p, kind="stable")
    return [{"mean_predicted": float(p[i].mean()), "observed_frequency": float(y[i].mean()), "count": len(i)}
            for i in np.array_split(order, min(bins, len(p))) if len(i)]


def signal_metrics(t: np.ndarray, event: np.ndarray, cross_ms: np.ndarray, score: np.ndarray, spec: Signal, *,
                   interval_ms: int) -> dict:
    """One signal's figures over the scored bars (arrays already restricted to the window with horizon)."""
    ok = ~np.isnan(score)
    t, y, cross, s = t[ok], event[ok].astype(np.float64), cross_ms[ok], score[ok]
    out: dict = {"bars": len(s), "auc": auc(y, s)}
    if spec.probability and len(s):
        out["brier"], out["brier_skill"] = brier(y, s)
    if spec.threshold is not None and len(s):
        alert = s >= spec.threshold
        base = y.mean()
        out["alert_bars"] = int(alert.sum())
        out["precision"] = float(y[alert].mean()) if alert.any() else None
        out["lift"] = out["precision"] / base if out["precision"] is not None and base > 0 else None
        out["recall"] = float(alert[y == 1].mean()) if y.any() else None
        leads, drops = lead_times_minutes(t, y == 1, cross, alert, interval_ms=interval_ms)
        out["drops"], out["drops_warned"] = drops, len(leads)
        out["lead_time_minutes_median"] = float(np.median(leads)) if len(leads) else None
        days = len(s) * interval_ms / DAY_MS
        out["false_alarms_per_day"] = false_alarms(t, y == 1, alert, interval_ms=interval_ms) / days
    return out


def track_record(frame: pd.DataFrame, *, interval_ms: int, horizon_minutes: float = 15, drop_pct: float = 1.0,
                 start_ms: int | None = None, end_ms: int | None = None,
                 signals: Mapping[str, Signal] | None = None, curves: bool = False) -> dict:
    """The API-shaped result over bars starting in [start_ms, end_ms) (defaults: the whole frame).

    Baseline columns missing from ``frame`` are computed here; a signal whose column is absent is
    reported with ``bars`` 0 and no figures.
    """
    signals = default_signals() if signals is None else signals
    ev = drop_events(frame, interval_ms=interval_ms, horizon_minutes=horizon_minutes, drop_pct=drop_pct)
    base = baselines(frame, interval_ms=interval_ms, horizon_minutes=horizon_minutes)
    t_all = frame.index.to_numpy(dtype=np.int64)
    window = ev["has_horizon"].to_numpy() & (t_all >= (start_ms if start_ms is not None else t_all.min(initial=0)))
    if end_ms is not None:
        window &= t_all < end_ms
    t = t_all[window]
    event = ev["event"].to_numpy()[window]
    cross = ev["cross_ms"].to_numpy()[window]
    result: dict = {"bars": len(t), "events": int(event.sum()),
                    "base_rate": float(event.mean()) if len(t) else None,
                    "horizon_minutes": horizon_minutes, "drop_pct": drop_pct, "signals": {}}
    if curves:
        result["curves"] = {}
    for name, spec in signals.items():
        source = frame if spec.column in frame.columns else base
        if spec.column not in source.columns:
            result["signals"][name] = {"bars": 0, "auc": None}
            continue
        score = source[spec.column].to_numpy(dtype=np.float64)[window]
        result["signals"][name] = signal_metrics(t, event, cross, score, spec, interval_ms=interval_ms)
        if curves:
            ok = ~np.isnan(score)
            y = event[ok].astype(np.float64)
            result["curves"][name] = {"roc": roc_points(y, score[ok])}
            if spec.probability:
                result["curves"][name]["reliability"] = reliability(y, score[ok])
    return result
