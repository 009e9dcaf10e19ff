"""The Selling Pressure Index (SPI): robust z-scores of the components, signed, weighted, squashed.

For each component i and bar t:

    z_i,t   = s_i * clip((x_i,t - median) / scale, -clip, clip)
    SPI_t   = 100 * logistic( sum_i w_i z_i,t / sum_i w_i )     over the components available at t

- median and scale come from the component's own TRAILING window: the previous ``window`` bars
  (bar t excluded, so no look-ahead and a shock is not diluted by itself), non-NaN values only,
  NaN until ``min_periods`` of them exist. scale = 1.4826 * MAD (consistent with the standard
  deviation for normal data); when MAD is 0 but the window is not constant (e.g. mostly-zero
  liquidations) it falls back to 1.2533 * mean absolute deviation from the median (the
  Iglewicz-Hoaglin convention); a constant window has no scale: z = 0 if x equals it, else NaN.
  Never infinite.
- s_i (SIGNS) orients every component so that positive = more selling.
- A component is available at t when its z is not NaN; weights renormalise over the available
  ones, so a missing feed neither drags the index towards 50 nor needs a placeholder.
- contribution_i,t = w_i z_i,t / sum(w_available): signed, summing to the logit of SPI/100.
- logistic(s) = 1 / (1 + e^-s); with |z| <= clip the SPI stays within 100*logistic(+-clip).
- Regimes are calibrated per instrument and interval (:func:`rolling_thresholds`): elevated at or
  above the 80th percentile of the instrument's own final index values over the trailing 30 days,
  high at or above the 95th, extreme at or above the 99th, refreshed daily (UTC) from the days before,
  so a regime means the same rarity on every instrument and no bar is judged by its own future.
  Until REGIME_MIN_BARS final values exist, DEFAULT_REGIME_THRESHOLDS apply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

# Positive = more selling. Ratios and flows oriented so that sell-side readings count up.
SIGNS: dict[str, int] = {
    "taker_sell_ratio": +1,
    "delta": -1,
    "cvd_slope": -1,
    "trade_count_imbalance": -1,  # positive = buy-heavy
    "large_trade_sell_share": +1,
    "vpin": +1,
    "kyles_lambda": +1,  # thinner market: the same selling moves price further
    "ofi": -1,
    "ofi_beta": +1,
    "imbalance": -1,  # ask-heavy (negative) books are pressure
    "bid_withdrawal": +1,
    "spread_widening": +1,
    "long_liquidations": +1,
    "funding_drop": +1,
    "oi_drop": +1,
    "dvol_rise": +1,
    "netflow_z": +1,
    "whale_ratio": +1,
    "spot_perp_divergence": +1,  # perp sold harder than spot
}

# DEFAULT_WEIGHTS: the one place the SPI mix is defined. Weights are relative (renormalised over
# the components available in each bar). Direct measures of aggressive selling and of the book
# get 1.0; corroborating measures that are noisier, slower or partly redundant with a 1.0
# component get less. delta and ofi_beta are computed but not weighted: delta is already in
# cvd_slope, ofi_beta duplicates kyles_lambda.
DEFAULT_WEIGHTS: dict[str, float] = {
    "taker_sell_ratio": 1.0,
    "cvd_slope": 1.0,
    "ofi": 1.0,
    "imbalance": 1.0,
    "long_liquidations": 1.0,
    "trade_count_imbalance": 0.5,
    "large_trade_sell_share": 0.75,
    "vpin": 0.5,
    "kyles_lambda": 0.5,
    "bid_withdrawal": 0.75,
    "spread_widening": 0.5,
    "funding_drop": 0.5,
    "oi_drop": 0.75,
    "dvol_rise": 0.5,
    "netflow_z": 0.75,
    "whale_ratio": 0.5,
    "spot_perp_divergence": 0.5,
}

# Human labels for explanations, phrased as the selling side of each component.
LABELS: dict[str, str] = {
    "taker_sell_ratio": "taker selling",
    "delta": "negative delta",
    "cvd_slope": "falling CVD",
    "trade_count_imbalance": "sell-heavy trade count",
    "large_trade_sell_share": "large-trade selling",
    "vpin": "toxic order flow (VPIN bar proxy)",
    "kyles_lambda": "high price impact",
    "ofi": "negative order-flow imbalance",
    "ofi_beta": "OFI price impact",
    "imbalance": "ask-heavy book",
    "bid_withdrawal": "bid withdrawal",
    "spread_widening": "spread widening",
    "long_liquidations": "long liquidations",
    "funding_drop": "funding drop",
    "oi_drop": "open-interest drop",
    "dvol_rise": "DVOL rise",
    "netflow_z": "exchange inflow",
    "whale_ratio": "whale deposits",
    "spot_perp_divergence": "perp-led selling",
}

REGIME_THRESHOLDS: tuple[float, float, float] = (40.0, 60.0, 80.0)
REGIMES = ("calm", "elevated", "high", "extreme")
REGIME_QUANTILES: tuple[float, float, float] = (0.80, 0.95, 0.99)
# Until an instrument has its own history: the 80th, 95th and 99th percentiles of the index over
# 9 months of Binance spot BTCUSDT 5m bars (2023-10 .. 2024-06), rounded.
DEFAULT_REGIME_THRESHOLDS: tuple[float, float, float] = (64.0, 74.0, 82.0)
REGIME_WINDOW_MS = 30 * 86_400_000
REGIME_REFRESH_MS = 86_400_000
REGIME_MIN_BARS = 500
DEFAULT_WINDOW = 240
DEFAULT_MIN_PERIODS = 60
DEFAULT_CLIP = 4.0
MAD_SCALE = 1.4826
MEANAD_SCALE = 1.2533  # sqrt(pi/2): mean absolute deviation -> standard deviation for normal data
_CHUNK = 4096  # rows sorted at a time: keeps the windows in cache and memory bounded


def trailing_median_scale(values, *, window: int = DEFAULT_WINDOW, min_periods: int = DEFAULT_MIN_PERIODS,
                          last: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust scale of the previous ``window`` values, per row and column.

    ``values`` is 1-D or (rows, columns). Returns (median, scale) shaped like the last ``last``
    rows (all rows by default); NaN where fewer than ``min_periods`` finite values precede the
    row. scale = 1.4826 MAD, else 1.2533 mean absolute deviation, else 0 (constant window).
    Exact per window: each window is sorted on its own, all columns in one vectorised pass.
    """
    x = np.asarray(values, dtype=np.float64)
    one_d = x.ndim == 1
    x = x[:, None] if one_d else x
    n, m = x.shape
    first = 0 if last is None else max(n - last, 0)
    median = np.full((n - first, m), np.nan)
    scale = np.full((n - first, m), np.nan)
    # Only columns with some history for the requested rows need any work.
    active = np.flatnonzero(np.isfinite(x[max(first - window, 0):n - 1]).any(axis=0)) if n > first else []
    if len(active):
        min_periods = max(1, min_periods)
        xa = x[:, active]
        padded = np.concatenate((np.full((window, len(active)), np.nan), xa))
        view = sliding_window_view(padded, window, axis=0)  # [t, j] = column j at rows t - window .. t - 1
        # Finite values per window from a running count: O(rows), not O(rows x window).
        seen = np.concatenate((np.zeros((1, len(active)), np.int64), np.cumsum(np.isfinite(xa), axis=0)))
        rows = np.arange(n + 1)
        counts = seen[rows] - seen[np.maximum(rows - window, 0)]
        step = max(1, _CHUNK // len(active))
        for lo in range(first, n, step):
            hi = min(lo + step, n)
            med, scl = _median_scale(view[lo:hi].reshape(-1, window), counts[lo:hi].reshape(-1), min_periods)
            median[lo - first:hi - first, active] = med.reshape(hi - lo, len(active))
            scale[lo - first:hi - first, active] = scl.reshape(hi - lo, len(active))
    return (median[:, 0], scale[:, 0]) if one_d else (median, scale)


def _median_scale(windows: np.ndarray, count: np.ndarray, min_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and scale of each row of a (rows, window) block, NaN-padded, ``count`` finite per row."""
    median = np.full(len(windows), np.nan)
    scale = np.full(len(windows), np.nan)
    ok = count >= min_periods
    if not ok.any():
        return median, scale
    s = np.sort(windows if ok.all() else windows[ok], axis=1)  # NaN sorts last
    c = count[ok]
    k_lo, k_hi = ((c - 1) // 2)[:, None], (c // 2)[:, None]
    med = (np.take_along_axis(s, k_lo, 1) + np.take_along_axis(s, k_hi, 1))[:, 0] / 2.0
    s -= med[:, None]  # in place: s becomes the absolute deviations
    np.abs(s, out=s)
    s.sort(axis=1)
    mad = (np.take_along_axis(s, k_lo, 1) + np.take_along_axis(s, k_hi, 1))[:, 0] / 2.0
    scl = MAD_SCALE * mad
    zero = np.flatnonzero(mad == 0)
    if len(zero):  # rare: more than half the window at one value
        mean_ad = np.nansum(s[zero], axis=1) / c[zero]
        scl[zero] = np.where(mean_ad > 0, MEANAD_SCALE * mean_ad, 0.0)
    median[ok] = med
    scale[ok] = scl
    return median, scale


def robust_z(components, *, window: int = DEFAULT_WINDOW, min_periods: int = DEFAULT_MIN_PERIODS,
             clip: float = DEFAULT_CLIP, last: int | None = None):
    """Unsigned robust z-score of each column against its trailing window, clipped to +-clip.

    Accepts a Series or DataFrame; with ``last`` only the last rows are computed and returned
    (the incremental path). Never inf: a zero scale gives 0 at the median and NaN elsewhere.
    """
    frame = components.to_frame() if isinstance(components, pd.Series) else components
    first = 0 if last is None else max(len(frame) - last, 0)
    x = frame.to_numpy(dtype=np.float64)
    med, scale = trailing_median_scale(x, window=window, min_periods=min_periods, last=len(x) - first)
    xt = x[first:]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # overflow: clipped below
        z = np.where(scale > 0, (xt - med) / np.where(scale > 0, scale, 1.0),
                     np.where((scale == 0) & (xt == med), 0.0, np.nan))
    result = pd.DataFrame(np.clip(z, -clip, clip), index=frame.index[first:], columns=frame.columns)
    return result.iloc[:, 0] if isinstance(components, pd.Series) else result


def logistic(s):
    """1 / (1 + e^-s)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(s, dtype=np.float64)))


def regime(spi, *, thresholds: tuple[float, float, float] = REGIME_THRESHOLDS) -> pd.Series:
    """calm < t0 <= elevated < t1 <= high < t2 <= extreme; None where the SPI is NaN."""
    index = spi.index if isinstance(spi, pd.Series) else None
    x = np.asarray(spi, dtype=np.float64)
    t0, t1, t2 = thresholds
    labels = np.select([x >= t2, x >= t1, x >= t0, x < t0], list(REGIMES[::-1]), default=None).astype(object)
    return pd.Series(labels, index=index, name="regime", dtype=object)


def regime_of(value: float | None, *, thresholds: tuple[float, float, float] = REGIME_THRESHOLDS) -> str | None:
    """The regime of one SPI value (None for None/NaN)."""
    if value is None or math.isnan(value):
        return None
    return REGIMES[sum(value >= t for t in thresholds)]


def thresholds_of(values, *, quantiles: tuple[float, float, float] = REGIME_QUANTILES, min_bars: int = REGIME_MIN_BARS,
                  defaults: tuple[float, float, float] = DEFAULT_REGIME_THRESHOLDS) -> tuple[tuple[float, ...], int]:
    """(elevated, high, extreme) thresholds from final index values, and how many values they rest on;
    the defaults while fewer than ``min_bars`` finite values exist."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < min_bars:
        return tuple(defaults), len(x)
    return tuple(float(v) for v in np.quantile(x, quantiles)), len(x)


def calibration_day(bucket_ms: int, *, refresh_ms: int = REGIME_REFRESH_MS) -> int:
    """Start of the calibration period (UTC day) a bar falls in."""
    return bucket_ms - bucket_ms % refresh_ms


def rolling_thresholds(spi: pd.Series, *, window_ms: int = REGIME_WINDOW_MS, refresh_ms: int = REGIME_REFRESH_MS,
                       quantiles: tuple[float, float, float] = REGIME_QUANTILES, min_bars: int = REGIME_MIN_BARS,
                       defaults: tuple[float, float, float] = DEFAULT_REGIME_THRESHOLDS) -> pd.DataFrame:
    """Per bar (index: bar start in ms), the thresholds in force: computed at the start of the bar's
    calibration period from the values of [start - window, start), walk-forward."""
    index = np.asarray(spi.index, dtype=np.int64)
    values = spi.to_numpy(dtype=np.float64)
    periods = index - index % refresh_ms
    out = np.empty((len(index), 3))
    order = np.argsort(index, kind="stable")
    sorted_index, sorted_values = index[order], values[order]
    for period in np.unique(periods):
        lo, hi = np.searchsorted(sorted_index, [period - window_ms, period])
        out[periods == period] = thresholds_of(sorted_values[lo:hi], quantiles=quantiles, min_bars=min_bars,
                                               defaults=defaults)[0]
    return pd.DataFrame(out, index=spi.index, columns=["elevated", "high", "extreme"])


def regimes_by(spi: pd.Series, thresholds: pd.DataFrame) -> pd.Series:
    """Regime per bar against per-bar thresholds (as from rolling_thresholds); None where the SPI is NaN."""
    x = spi.to_numpy(dtype=np.float64)
    t = thresholds.reindex(spi.index).to_numpy(dtype=np.float64)
    labels = np.select([x >= t[:, 2], x >= t[:, 1], x >= t[:, 0], x < t[:, 0]], list(REGIMES[::-1]), default=None)
    return pd.Series(labels.astype(object), index=spi.index, name="regime", dtype=object)


@dataclass(frozen=True)
class SpiResult:
    """Per bar (rows indexed by bar start): ``spi`` (NaN while no component has a z), ``regime``,
    per component the raw ``value``, the signed clipped ``z``, the renormalised ``weight``
    (NaN when missing) and the signed ``contribution`` = weight * z, and ``missing_mask`` (True
    where a weighted component has no z). ``missing`` gives the same as lists of names."""

    spi: pd.Series
    regime: pd.Series
    value: pd.DataFrame
    z: pd.DataFrame
    weight: pd.DataFrame
    contribution: pd.DataFrame
    missing_mask: pd.DataFrame
    weights: Mapping[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.spi)

    @cached_property
    def missing(self) -> pd.Series:
        names = np.array(self.missing_mask.columns, dtype=object)
        return pd.Series([list(names[row]) for row in self.missing_mask.to_numpy()], index=self.spi.index,
                         name="missing", dtype=object)

    def row(self, bar=None) -> dict:
        """One bar as a plain dict (the last bar by default)."""
        i = len(self.spi) - 1 if bar is None else self.spi.index.get_loc(bar)
        return self._rows_at([i])[0]

    def rows(self, bars=None) -> list[dict]:
        """Several bars as plain dicts, in index order (all bars by default)."""
        positions = range(len(self.spi)) if bars is None else sorted(self.spi.index.get_indexer(list(bars)))
        return self._rows_at([i for i in positions if i >= 0])

    def _rows_at(self, positions: list[int]) -> list[dict]:
        # Plain arrays, read once: per-element pandas access cost ~3 ms a bar on the live path.
        names = list(self.z.columns)
        value, z, weight, contribution = (
            _floats_or_none(getattr(self, key).reindex(columns=names).to_numpy(dtype=np.float64)[positions])
            for key in ("value", "z", "weight", "contribution"))
        missing = self.missing_mask.reindex(columns=names).to_numpy(dtype=bool)[positions].tolist()
        spi = _floats_or_none(self.spi.to_numpy(dtype=np.float64)[positions])
        regimes = self.regime.to_numpy()[positions].tolist()
        index = self.spi.index[positions].tolist()
        return [{
            "bucket_ms": int(index[r]),
            "spi": spi[r],
            "regime": regimes[r],
            "components": {
                name: {"value": v, "z": zz, "weight": w, "contribution": c}
                for name, v, zz, w, c in zip(names, value[r], z[r], weight[r], contribution[r], strict=True)
            },
            "missing": [name for name, gone in zip(names, missing[r], strict=True) if gone],
        } for r in range(len(positions))]

    def to_frame(self) -> pd.DataFrame:
        """Flat frame: spi, regime, then value_/z_/contribution_<component>, then missing."""
        parts = [self.spi.rename("spi"), self.regime]
        for prefix, frame in (("value", self.value), ("z", self.z), ("contribution", self.contribution)):
            parts.append(frame.add_prefix(f"{prefix}_"))
        parts.append(self.missing)
        return pd.concat(parts, axis=1)


def _floats_or_none(values: np.ndarray) -> list:
    """Plain Python floats, None where NaN (as lists, nested like `values`): one pass for a whole table."""
    return np.where(np.isnan(values), None, values).tolist()


def combine(z: pd.DataFrame, *, weights: Mapping[str, float] = DEFAULT_WEIGHTS
            ) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """SPI from signed z-scores: (spi, renormalised weights, contributions, missing mask)."""
    zs = z.to_numpy(dtype=np.float64)
    w = np.array([float(weights[c]) for c in z.columns])
    available = np.isfinite(zs)
    total = (available * w).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(available, w, np.nan) / np.where(total > 0, total, np.nan)[:, None]
    contribution = weight * zs
    logit = np.where(total > 0, np.nansum(np.where(available, contribution, 0.0), axis=1), np.nan)
    spi = pd.Series(100.0 * logistic(logit), index=z.index, name="spi")
    return (spi, pd.DataFrame(weight, index=z.index, columns=z.columns),
            pd.DataFrame(contribution, index=z.index, columns=z.columns),
            pd.DataFrame(~available, index=z.index, columns=z.columns))


def spi(
    components: pd.DataFrame,
    *,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    signs: Mapping[str, int] = SIGNS,
    window: int = DEFAULT_WINDOW,
    min_periods: int = DEFAULT_MIN_PERIODS,
    clip: float = DEFAULT_CLIP,
    thresholds: tuple[float, float, float] = REGIME_THRESHOLDS,
    last: int | None = None,
) -> SpiResult:
    """The SPI per bar from raw component values (columns named as in SIGNS, rows = bars).

    Components with a positive weight are used; a weighted component absent from ``components``
    is missing in every bar. ``last`` computes only the last rows (given enough history rows).
    """
    names = [c for c, w in weights.items() if w > 0]
    unknown = [c for c in names if c not in signs]
    if unknown:
        raise KeyError(f"no sign for components {unknown}: add them to signs")
    value = components.reindex(columns=names).astype(np.float64)
    z = robust_z(value, window=window, min_periods=min_periods, clip=clip, last=last)
    z = z * np.array([float(signs[c]) for c in names]) + 0.0  # + 0.0 turns -0.0 into 0.0
    index, weight, contribution, missing = combine(z, weights=weights)
    return SpiResult(
        spi=index,
        regime=regime(index, thresholds=thresholds),
        value=value.iloc[len(value) - len(z):],
        z=z,
        weight=weight,
        contribution=contribution,
        missing_mask=missing,
        weights={c: float(weights[c]) for c in names},
    )


def explain(result: SpiResult, bar=None, *, top: int = 3, labels: Mapping[str, str] = LABELS,
            thresholds: tuple[float, float, float] = REGIME_THRESHOLDS, show_missing: bool = False) -> str:
    """One bar in words, e.g. "SPI 78 (high): 45% taker selling, 30% long liquidations, 25% exchange inflow".

    Percentages are each component's share of the bar's positive (selling) contributions; the
    ``top`` largest are listed; with ``show_missing`` the missing components are named at the end.
    """
    row = result.row(bar)
    if row["spi"] is None:
        return "SPI n/a: no component has enough history yet"
    head = f"SPI {row['spi']:.0f} ({regime_of(row['spi'], thresholds=thresholds)})"
    positive = {n: c["contribution"] for n, c in row["components"].items()
                if c["contribution"] is not None and c["contribution"] > 0}
    total = sum(positive.values())
    if total > 0:
        ranked = sorted(positive.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        body = ", ".join(f"{100 * v / total:.0f}% {labels.get(n, n)}" for n, v in ranked)
    else:
        body = "no component points to selling"
    text = f"{head}: {body}"
    if show_missing and row["missing"]:
        text += "; missing: " + ", ".join(labels.get(n, n) for n in row["missing"])
    return text
