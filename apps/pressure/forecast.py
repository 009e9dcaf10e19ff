"""Drop-risk forecast: a calibrated probability that price falls at least X% within H (pure math).

API (bar starts in UTC epoch milliseconds; ``frame`` indexed by them, ascending, on the bar grid, with
open/high/low/close/volume/taker_sell_ratio, optionally ``trades`` and index component columns):

- ``DropRiskSpec(interval_ms=, horizon_minutes=15, drop_pct=1.0, components=())``: what is forecast.
- ``fit(frame, spec=, train_end_ms=)`` -> ``DropRiskModel`` or None (not enough history). Uses only
  bars whose whole horizon ended by ``train_end_ms`` (s_t + H + D <= train_end_ms).
- ``DropRiskModel.predict(frame)`` -> Series of probabilities (NaN where a feature is missing);
  ``model.version`` ("dr2-<UTC date of train_end>-<8 hex of the recipe>", stored with each
  prediction); ``model.to_json()`` / ``DropRiskModel.from_json(text)`` round-trip exactly.
- ``walk_forward(frame, spec=)`` -> (DataFrame ``drop_risk``, ``drop_risk_model`` per bar, models):
  a refit at every UTC month start (``refit_times``), each from the bars before it; bars before
  the first model get NaN.
- ``features(frame, spec=)`` -> the feature table; row t depends on bars up to t only.

Model (two linear stages, so it stays small, stable on little data and serialisable as JSON):
1. Scale: ridge regression of log(future range) = log(log(max high / min low) over the bars in
   (t, t+H]) on log mean |log return| and log mean high-low range over 1 bar, 15 min, 1 h, 4 h, 1 day,
   relative volume (and trade count) over 1 bar and 1 h vs 1 day, the time-of-day volatility of the
   next H over the last 28 days, the UTC time of day (sin and cos of 1x and 2x its angle) and a
   weekend flag. This stage learns from every bar, not only from the rare drops.
2. Direction and calibration: logistic regression (L2, C = 1) of the drop event
   (``track_record.drop_events``) on the stage-1 prediction z, the share of downward movement over
   1 h and 4 h, the return over 1 bar and 1 h, the taker sell ratio of the bar and over 1 h, the
   distance from the 1 h high and low, the index components (a missing component counts as its
   training mean), and the product (z - mean training log future range) * 1 h down share, so the
   weight of the recent direction grows with the expected range (``model.interactions``).
Features are standardised with the training rows' mean and standard deviation. Recipe "dr2"; "dr1" had
neither the time-of-day terms nor the product (stored dr1 models load with ``interactions`` empty and
predict as before).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from apps.pressure.track_record import drop_events

if TYPE_CHECKING:
    from sklearn.preprocessing import StandardScaler

RECIPE = "dr2"
MINUTE_MS = 60_000
DAY_MS = 86_400_000
WINDOWS_MINUTES = (15, 60, 240, 1440)  # plus one bar
SEASONAL_DAYS = 28
SEASONAL_MIN_DAYS = 3
TIME_OF_DAY_HARMONICS = 2  # sin/cos of 1x and 2x the UTC time-of-day angle
HISTORY_DAYS = SEASONAL_DAYS + 2  # bars a prediction reads: the seasonal days, the day-long windows, a bar
MIN_TRAIN_DAYS = 28
MIN_TRAIN_EVENTS = 20
RIDGE_ALPHA = 1.0
LOGISTIC_C = 1.0
EPS = 1e-5


@dataclass(frozen=True)
class DropRiskSpec:
    interval_ms: int
    horizon_minutes: int = 15
    drop_pct: float = 1.0
    components: tuple[str, ...] = ()

    @property
    def horizon_bars(self) -> int:
        bars, rest = divmod(self.horizon_minutes * MINUTE_MS, self.interval_ms)
        if rest or bars < 1 or self.horizon_minutes * MINUTE_MS >= DAY_MS:
            raise ValueError("the horizon must be a whole number of bars and shorter than a day")
        return bars


def horizon_minutes_for(*, interval_ms: int, configured: int) -> int:
    """The forecast horizon on bars of ``interval_ms``: ``configured`` minutes where that is a whole number of bars
    (15 on 1m and 5m bars), else the next whole number of bars (60 minutes on 1h bars)."""
    size = interval_ms // MINUTE_MS
    return configured if configured % size == 0 else size * max(1, -(-configured // size))


def _bars(minutes: int, interval_ms: int) -> int:
    return max(1, round(minutes * MINUTE_MS / interval_ms))


def _mean(x: pd.Series, n: int) -> pd.Series:
    return x.rolling(n, min_periods=(n + 1) // 2).mean()


def _grid(frame: pd.DataFrame, interval_ms: int) -> pd.DataFrame:
    """The frame on its gap-free bar grid (missing buckets as NaN rows), so shifts count bars."""
    t = frame.index.to_numpy(dtype=np.int64)
    if not len(t):
        return frame
    return frame.reindex(np.arange(t[0], t[-1] + 1, interval_ms, dtype=np.int64))


def _seasonal(close: pd.Series, rows: np.ndarray, spec: DropRiskSpec) -> np.ndarray:
    """Time-of-day volatility of the coming horizon at grid positions ``rows`` of ``close`` (a full grid):
    the mean |log return| over the H that followed the same time on each of the last 28 days (all of it
    before t, since H < 1 day), averaged over the days that have it (at least 3). Prefix sums, so the
    newest bars can be scored without recomputing the whole history."""
    day, k = _bars(1440, spec.interval_ms), spec.horizon_bars
    abs_ret = np.abs(np.log(close.to_numpy() / close.shift(1).to_numpy()))
    sums = np.r_[0.0, np.cumsum(np.nan_to_num(abs_ret))]
    counts = np.r_[0, np.cumsum(~np.isnan(abs_ret))]
    total, days = np.zeros(len(rows)), np.zeros(len(rows))
    for d in range(1, SEASONAL_DAYS + 1):
        first = rows - d * day + 1  # window [first, first + k): the H after the bar d days before
        lo, hi = np.clip(first, 0, None), np.clip(first + k, 0, None)
        n = counts[hi] - counts[lo]
        total += np.divide(sums[hi] - sums[lo], n, out=np.zeros(len(rows)), where=n > 0)
        days += n > 0
    return np.where(days >= SEASONAL_MIN_DAYS, total / np.maximum(days, 1), np.nan)


def _scale_features(b: pd.DataFrame, spec: DropRiskSpec, seasonal: np.ndarray) -> dict[str, pd.Series]:
    d = spec.interval_ms
    log_close = np.log(b["close"])
    abs_ret = log_close.diff().abs()
    rng = np.log(b["high"] / b["low"])
    out = {}
    for n in sorted({1, *(_bars(m, d) for m in WINDOWS_MINUTES)}):
        label = f"{n * d // MINUTE_MS}m"
        out[f"log_abs_return_{label}"] = np.log(_mean(abs_ret, n) + EPS)
        out[f"log_range_{label}"] = np.log(_mean(rng, n) + EPS)
    day = _bars(1440, d)
    for col in ("volume", "trades"):
        if col in b.columns:
            typical = _mean(b[col], day)
            for n in sorted({1, _bars(60, d)}):
                out[f"log_rel_{col}_{n * d // MINUTE_MS}m"] = np.log(_mean(b[col], n) / typical + 0.01)
    out["log_seasonal_abs_return"] = pd.Series(np.log(seasonal + EPS), index=b.index)
    angle = 2 * np.pi * (b.index.to_numpy(dtype=np.int64) % DAY_MS) / DAY_MS
    angle[b["close"].isna().to_numpy()] = np.nan  # no bar, no features
    for k in range(1, TIME_OF_DAY_HARMONICS + 1):
        out[f"time_of_day_sin_{k}"] = pd.Series(np.sin(k * angle), index=b.index)
        out[f"time_of_day_cos_{k}"] = pd.Series(np.cos(k * angle), index=b.index)
    weekday = (b.index.to_numpy(dtype=np.int64) // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday
    out["weekend"] = pd.Series((weekday >= 5).astype(np.float64), index=b.index).where(b["close"].notna())
    return out


def _direction_features(b: pd.DataFrame, spec: DropRiskSpec) -> dict[str, pd.Series]:
    d = spec.interval_ms
    hour, four = _bars(60, d), _bars(240, d)
    log_close = np.log(b["close"])
    ret = log_close.diff()
    out = {}
    for n in (hour, four):
        moved = ret.abs().rolling(n, min_periods=(n + 1) // 2).sum()
        down = (-ret).clip(lower=0).rolling(n, min_periods=(n + 1) // 2).sum()
        out[f"down_share_{n * d // MINUTE_MS}m"] = (down / moved).where(moved > 0, 0.5).where(moved.notna())
    out["return_1b"] = ret
    out[f"return_{hour * d // MINUTE_MS}m"] = log_close - log_close.shift(hour)
    ratio = b["taker_sell_ratio"].where(b["volume"] > 0, 0.5).where(b["close"].notna())
    out["taker_sell_ratio"] = ratio
    sold = (ratio * b["volume"]).rolling(hour, min_periods=1).sum()
    volume = b["volume"].rolling(hour, min_periods=1).sum()
    out["taker_sell_ratio_60m"] = (sold / volume).where(volume > 0, 0.5).where(b["close"].notna())
    out["from_high_60m"] = log_close - np.log(b["high"].rolling(hour, min_periods=1).max())
    out["from_low_60m"] = log_close - np.log(b["low"].rolling(hour, min_periods=1).min())
    return out


def _interactions(spec: DropRiskSpec) -> list[str]:
    """Direction features that stage 2 also takes multiplied by the centred stage-1 prediction: the 1 h down share."""
    hour = _bars(60, spec.interval_ms)
    return [f"down_share_{hour * spec.interval_ms // MINUTE_MS}m"]


def _stage2_matrix(z: np.ndarray, centre: float, x2: np.ndarray, direction_features: list[str],
                   interactions: list[str]) -> np.ndarray:
    """Stage-2 inputs: z, the direction features, then (z - centre) * each interaction feature."""
    crossed = [(z - centre) * x2[:, direction_features.index(name)] for name in interactions]
    return np.column_stack([z, x2, *crossed])


def _feature_groups(frame: pd.DataFrame, spec: DropRiskSpec,
                    last: int | None = None) -> tuple[pd.DataFrame, list[str], list[str]]:
    full = _grid(frame, spec.interval_ms)
    rows = np.arange(len(full))
    if last is not None:  # the newest bars only: every window but the seasonal one spans at most a day
        reach = (_bars(1440, spec.interval_ms) + 2) * spec.interval_ms
        rows = rows[full.index.to_numpy() >= frame.index[-last] - reach]
    b = full.iloc[rows]
    scale = _scale_features(b, spec, _seasonal(full["close"], rows, spec))
    direction = _direction_features(b, spec)
    for name in spec.components:
        direction[f"component_{name}"] = b[name].astype(np.float64) if name in b.columns else np.nan
    wanted = frame.index if last is None else frame.index[-last:]
    table = pd.DataFrame({**scale, **direction}, index=b.index).astype(np.float64).reindex(wanted)
    return table, list(scale), list(direction)


def features(frame: pd.DataFrame, *, spec: DropRiskSpec, last: int | None = None) -> pd.DataFrame:
    """Feature table (index: ``frame``'s, or its ``last`` bars): scale features, then direction features and
    components. ``last`` computes the newest bars only (to ~1e-12 of the whole computation, in milliseconds)."""
    return _feature_groups(frame, spec, last)[0]


def _future_log_range(frame: pd.DataFrame, spec: DropRiskSpec) -> pd.Series:
    """Stage-1 target: log of log(max high / min low) over the bars starting in (t, t+H]."""
    b, k = _grid(frame, spec.interval_ms), spec.horizon_bars
    high = b["high"][::-1].rolling(k, min_periods=1).max()[::-1].shift(-1)
    low = b["low"][::-1].rolling(k, min_periods=1).min()[::-1].shift(-1)
    return np.log(np.log(high / low) + EPS).reindex(frame.index)


@dataclass
class Linear:
    """Standardise with mean/scale, then intercept + coef . x."""

    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float

    @classmethod
    def from_sklearn(cls, scaler: StandardScaler, model) -> Linear:
        return cls(scaler.mean_.tolist(), scaler.scale_.tolist(), np.ravel(model.coef_).tolist(),
                   float(np.ravel(model.intercept_)[0]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - np.asarray(self.mean)) / np.asarray(self.scale) @ np.asarray(self.coef) + self.intercept


@dataclass
class DropRiskModel:
    spec: DropRiskSpec
    train_end_ms: int
    scale_features: list[str]
    direction_features: list[str]
    stage1: Linear
    stage2: Linear
    train_bars: int
    train_events: int
    recipe: dict = field(default_factory=dict)
    interactions: list[str] = field(default_factory=list)  # empty in dr1 models

    @property
    def base_rate(self) -> float:
        return self.train_events / self.train_bars

    @property
    def version(self) -> str:
        day = datetime.fromtimestamp(self.train_end_ms / 1000, tz=UTC).strftime("%Y%m%d")
        digest = hashlib.sha256(json.dumps(self.recipe, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.recipe.get('recipe', RECIPE)}-{day}-{digest}"

    def predict_features(self, table: pd.DataFrame) -> pd.Series:
        x1 = table[self.scale_features].to_numpy(dtype=np.float64)
        x2 = table[self.direction_features].to_numpy(dtype=np.float64)
        comp = np.array([c.startswith("component_") for c in self.direction_features], dtype=bool)
        z = self.stage1(x1)
        x2 = np.where(comp & np.isnan(x2), np.asarray(self.stage2.mean[1:1 + x2.shape[1]]), x2)
        logit = self.stage2(_stage2_matrix(z, self.stage1.intercept, x2, self.direction_features,
                                           self.interactions))
        return pd.Series(1.0 / (1.0 + np.exp(-logit)), index=table.index, name="drop_risk")

    def predict(self, frame: pd.DataFrame, *, last: int | None = None) -> pd.Series:
        """Probability per bar of ``frame`` or of its ``last`` bars (NaN where a feature is missing). Pass
        HISTORY_DAYS of bars before the first bar to score."""
        return self.predict_features(features(frame, spec=self.spec, last=last))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DropRiskModel:
        raw = json.loads(text)
        raw["spec"] = DropRiskSpec(**{**raw["spec"], "components": tuple(raw["spec"]["components"])})
        raw["stage1"], raw["stage2"] = Linear(**raw["stage1"]), Linear(**raw["stage2"])
        return cls(**raw)


def recipe(spec: DropRiskSpec, scale_features: list[str], direction_features: list[str]) -> dict:
    return {"recipe": RECIPE, **asdict(spec), "components": list(spec.components),
            "scale_features": scale_features, "direction_features": direction_features,
            "interactions": _interactions(spec), "ridge_alpha": RIDGE_ALPHA, "logistic_c": LOGISTIC_C,
            "seasonal_days": SEASONAL_DAYS, "time_of_day_harmonics": TIME_OF_DAY_HARMONICS}


@dataclass(frozen=True)
class _Training:
    """What every refit of one walk-forward shares: features, targets and the rows that can be learnt from."""

    spec: DropRiskSpec
    table: pd.DataFrame
    scale_features: list[str]
    direction_features: list[str]
    event: np.ndarray
    future_log_range: np.ndarray
    usable: np.ndarray  # whole horizon, all targets and non-component features known

    @classmethod
    def of(cls, frame: pd.DataFrame, spec: DropRiskSpec) -> _Training:
        table, scale, direction = _feature_groups(frame, spec)
        ev = drop_events(frame, interval_ms=spec.interval_ms, horizon_minutes=spec.horizon_minutes,
                         drop_pct=spec.drop_pct)
        target = _future_log_range(frame, spec).to_numpy()
        required = [c for c in table.columns if not c.startswith("component_")]
        usable = ev["has_horizon"].to_numpy() & ~np.isnan(target) & table[required].notna().all(axis=1).to_numpy()
        return cls(spec, table, scale, direction, ev["event"].to_numpy(), target, usable)


def _fit_rows(tr: _Training, train_end_ms: int) -> DropRiskModel | None:
    spec = tr.spec
    t = tr.table.index.to_numpy(dtype=np.int64)
    rows = tr.usable & (t + spec.horizon_bars * spec.interval_ms + spec.interval_ms <= train_end_ms)
    y = tr.event[rows]
    if rows.sum() * spec.interval_ms < MIN_TRAIN_DAYS * DAY_MS or y.sum() < MIN_TRAIN_EVENTS:
        return None
    # scikit-learn is imported where a model is fitted: predicting needs only the stored coefficients, and every
    # process (web, worker, each manage.py command) would otherwise pay its second and a half of imports at start.
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    x1 = tr.table.loc[rows, tr.scale_features].to_numpy()
    scaler1 = StandardScaler().fit(x1)
    stage1 = Linear.from_sklearn(scaler1, Ridge(alpha=RIDGE_ALPHA).fit(scaler1.transform(x1),
                                                                        tr.future_log_range[rows]))
    x2 = tr.table.loc[rows, tr.direction_features].to_numpy()
    x2 = np.where(np.isnan(x2), pd.DataFrame(x2).mean().fillna(0.0).to_numpy(), x2)  # only components are NaN
    interactions = _interactions(spec)
    x2 = _stage2_matrix(stage1(x1), stage1.intercept, x2, tr.direction_features, interactions)
    scaler2 = StandardScaler().fit(x2)
    clf = LogisticRegression(C=LOGISTIC_C, max_iter=5000).fit(scaler2.transform(x2), y)
    return DropRiskModel(spec=spec, train_end_ms=int(train_end_ms), scale_features=tr.scale_features,
                         direction_features=tr.direction_features, stage1=stage1,
                         stage2=Linear.from_sklearn(scaler2, clf), train_bars=int(rows.sum()),
                         train_events=int(y.sum()), recipe=recipe(spec, tr.scale_features, tr.direction_features),
                         interactions=interactions)


def fit(frame: pd.DataFrame, *, spec: DropRiskSpec, train_end_ms: int) -> DropRiskModel | None:
    """A model from the bars whose whole horizon ended by ``train_end_ms``; None with too little history
    (fewer than MIN_TRAIN_DAYS days of usable bars or MIN_TRAIN_EVENTS events)."""
    return _fit_rows(_Training.of(frame, spec), train_end_ms)


def refit_times(first_ms: int, last_ms: int) -> list[int]:
    """UTC month starts in (first_ms, last_ms]: the walk-forward refit schedule."""
    first = pd.Timestamp(first_ms, unit="ms", tz="UTC")
    starts = pd.date_range(first.floor("D").replace(day=1), pd.Timestamp(last_ms, unit="ms", tz="UTC"),
                           freq="MS")
    return [int(s.value // 1_000_000) for s in starts if first_ms < s.value // 1_000_000 <= last_ms]


def walk_forward(frame: pd.DataFrame, *, spec: DropRiskSpec) -> tuple[pd.DataFrame, dict[int, DropRiskModel]]:
    """drop_risk and drop_risk_model per bar, each from the latest model refit at or before the bar's start
    (the previous model is kept when a refit lacks history); the models by refit time."""
    out = pd.DataFrame({"drop_risk": np.nan, "drop_risk_model": ""}, index=frame.index)
    if frame.empty:
        return out, {}
    tr = _Training.of(frame, spec)
    t = frame.index.to_numpy(dtype=np.int64)
    times = refit_times(int(t[0]), int(t[-1]))
    if not times:  # history within one month: no refit time, no model yet
        return out, {}
    models: dict[int, DropRiskModel] = {}
    model = None
    for refit, until in zip(times, [*times[1:], int(t[-1]) + 1], strict=True):
        fitted = _fit_rows(tr, refit)
        if fitted is not None:
            models[refit] = model = fitted
        if model is None:
            continue
        rows = (t >= refit) & (t < until)
        out.loc[rows, "drop_risk"] = model.predict_features(tr.table.loc[rows]).to_numpy()
        out.loc[rows, "drop_risk_model"] = model.version
    return out, models
