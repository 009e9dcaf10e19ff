"""On-chain exchange flow components from per-bar series.

- netflow_z = (netflow_t - mean) / std, mean and std (ddof=1) of the previous ``window`` bars
  (current excluded, so a surge is not diluted by itself); NaN with fewer than ``min_periods``
  earlier values. A flat history (std 0) gives 0 when the value equals the mean and NaN
  otherwise: there is no scale to measure the surprise in, and never an infinite score.
- whale_ratio = top-N inflows / total inflow, passed through (NaN where inflow was zero).
- stablecoin_netflow passed through (the SPI flips its sign: stablecoins leaving exchanges
  shrink buying power).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def netflow_z(netflow: pd.Series, *, window: int = 240, min_periods: int = 30) -> pd.Series:
    """Z-score of netflow against its trailing window (mean and sample std of the previous bars)."""
    x = netflow.astype(float)
    prior = x.shift(1).rolling(window, min_periods=min_periods)
    mean, std = prior.mean(), prior.std(ddof=1)
    dev = x - mean
    # Rolling moments leave round-off where the window is flat: treat a tiny std as zero.
    flat = ~(std > 1e-12 * mean.abs().clip(lower=1.0))
    z = dev / std.where(~flat)
    z = z.where(~flat, np.where(dev.abs() <= 1e-12 * mean.abs().clip(lower=1.0), 0.0, np.nan))
    return z.where(mean.notna() & x.notna()).rename("netflow_z")


def whale_ratio(ratio: pd.Series) -> pd.Series:
    """Exchange whale ratio per bar, unchanged (float)."""
    return ratio.astype(float).rename("whale_ratio")


def stablecoin_netflow(netflow: pd.Series) -> pd.Series:
    """Stablecoin netflow per bar (USD), unchanged: inflow - outflow."""
    return netflow.astype(float).rename("stablecoin_netflow")


def flow_components(frame: pd.DataFrame, *, window: int = 240, min_periods: int = 30) -> pd.DataFrame:
    """Components from the columns present: ``netflow`` → netflow_z, ``whale_ratio``, ``stablecoin_netflow``."""
    out = {}
    if "netflow" in frame:
        out["netflow_z"] = netflow_z(frame["netflow"], window=window, min_periods=min_periods)
    if "whale_ratio" in frame:
        out["whale_ratio"] = whale_ratio(frame["whale_ratio"])
    if "stablecoin_netflow" in frame:
        out["stablecoin_netflow"] = stablecoin_netflow(frame["stablecoin_netflow"])
    return pd.DataFrame(out, index=frame.index)
