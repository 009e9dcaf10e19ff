"""Cross-venue views: volume-weighted aggregation of a component, spot-vs-perp divergence and leadership.

- volume_weighted / aggregate_venues: per bar, sum_v(volume_v * x_v) / sum_v(volume_v) over the
  venues whose value is finite and whose volume is positive in that bar; NaN when none qualifies.
- spot_perp_divergence = taker sell ratio (perp) - taker sell ratio (spot): positive when the
  perpetual is being sold harder than spot (leveraged, derivatives-led selling).
- lead_lag: Pearson correlation of spot delta shifted by ``lag`` bars against perp delta,
  corr(spot_{t-lag}, perp_t), for lag in [-max_lag, max_lag]; the lag with the highest correlation
  wins (ties go to the smaller |lag|). Positive lag = spot leads, negative = perp leads, 0 = neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd


def volume_weighted(values: pd.DataFrame, volumes: pd.DataFrame) -> pd.Series:
    """Volume-weighted mean across venue columns (same column names in both frames)."""
    volumes = volumes.reindex(index=values.index, columns=values.columns).astype(float)
    x = values.astype(float).to_numpy()
    v = volumes.to_numpy()
    use = np.isfinite(x) & np.isfinite(v) & (v > 0)
    weight = np.where(use, v, 0.0)
    total = weight.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, (weight * np.where(use, x, 0.0)).sum(axis=1) / total, np.nan)
    return pd.Series(out, index=values.index, name="volume_weighted")


def aggregate_venues(frames: Mapping[str, pd.DataFrame], *, component: str, volume: str = "volume") -> pd.Series:
    """One series from per-venue frames (venue -> frame with ``component`` and ``volume`` columns,
    indexed by bar start): the volume-weighted mean on the union of their bars."""
    values = pd.DataFrame({venue: f[component] for venue, f in frames.items()})
    volumes = pd.DataFrame({venue: f[volume] for venue, f in frames.items()})
    return volume_weighted(values, volumes).rename(component)


def spot_perp_divergence(perp_taker_sell_ratio: pd.Series, spot_taker_sell_ratio: pd.Series) -> pd.Series:
    """perp - spot taker sell ratio per bar (NaN where either is missing)."""
    return (perp_taker_sell_ratio.astype(float) - spot_taker_sell_ratio.astype(float)).rename("spot_perp_divergence")


@dataclass(frozen=True)
class LeadLag:
    """Result of :func:`lead_lag`: best ``lag`` (bars; None without data), its ``correlation``,
    ``leader`` ("spot", "perp", "neither" or None) and the correlation at every lag."""

    lag: int | None
    correlation: float
    leader: str | None
    correlations: pd.Series


def lead_lag(spot_delta: pd.Series, perp_delta: pd.Series, *, max_lag: int = 5, min_periods: int = 10) -> LeadLag:
    """Which venue's delta leads the other's, from cross-correlations over lags -max_lag..max_lag."""
    spot = spot_delta.astype(float)
    perp = perp_delta.astype(float).reindex(spot.index)
    lags = np.arange(-max_lag, max_lag + 1)
    corr = pd.Series(
        [spot.shift(int(lag)).corr(perp, min_periods=min_periods) for lag in lags],
        index=pd.Index(lags, name="lag"), name="correlation", dtype=float,
    )
    finite = corr.dropna()
    if finite.empty:
        return LeadLag(None, float("nan"), None, corr)
    # Highest correlation; among equals the smallest |lag| (stable order by |lag|).
    order = finite.iloc[np.argsort(np.abs(finite.index.to_numpy()), kind="stable")]
    lag = int(order.idxmax())
    leader = "spot" if lag > 0 else "perp" if lag < 0 else "neither"
    return LeadLag(lag, float(corr[lag]), leader, corr)
