"""Selling-pressure episodes from an SPI series, with hysteresis and a source label.

An episode starts on the first bar with SPI >= ``enter`` (60, the high regime) and ends on the
first later bar with SPI < ``exit`` (40, below elevated); in between it stays open whatever the
SPI does, so it does not flicker around one threshold. NaN SPI bars neither start nor end one.
``end`` is the start of the bar that closed it (None while still open); the episode covers the
bars start <= t < end.

Per episode: peak time and peak SPI (first bar of the maximum), and the price drawdown = largest
peak-to-trough fall of the close within the episode, max_t(1 - close_t / max_{s<=t} close_s),
as a fraction (0 if price never fell, NaN without prices).

Source label (rule): over the episode's bars, sum each component's positive contributions
(the selling side only). Each group's share = its sum / the sum over all grouped components.
The label is the group with the largest share if that share >= ``dominance`` (0.5), otherwise
"mixed" (also when no grouped component contributed). Components outside the groups (cvd_slope,
trade_count_imbalance, ofi, imbalance, vpin, ...) show that there is selling, not why, so they
do not vote. Groups (EPISODE_GROUPS):

- deleveraging: long_liquidations, oi_drop, funding_drop, spot_perp_divergence
- profit-taking: taker_sell_ratio, large_trade_sell_share, netflow_z, whale_ratio
- event-shock: spread_widening, dvol_rise, bid_withdrawal, kyles_lambda
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ENTER = 60.0
EXIT = 40.0
DOMINANCE = 0.5
MIXED = "mixed"
EPISODE_GROUPS: dict[str, tuple[str, ...]] = {
    "deleveraging": ("long_liquidations", "oi_drop", "funding_drop", "spot_perp_divergence"),
    "profit-taking": ("taker_sell_ratio", "large_trade_sell_share", "netflow_z", "whale_ratio"),
    "event-shock": ("spread_widening", "dvol_rise", "bid_withdrawal", "kyles_lambda"),
}


@dataclass(frozen=True)
class Episode:
    start: int
    peak_time: int
    peak_spi: float
    end: int | None
    bars: int
    drawdown: float
    source: str
    shares: dict[str, float] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return self.end is None


def in_episode(spi: pd.Series, *, enter: float = ENTER, exit: float = EXIT) -> pd.Series:
    """Boolean per bar: inside an episode (vectorised hysteresis: the last crossing decides)."""
    if exit > enter:
        raise ValueError("exit threshold must not exceed enter threshold")
    x = spi.to_numpy(dtype=np.float64)
    # 1 on entering, 0 on leaving, NaN keeps the previous state (including NaN SPI bars).
    state = np.where(x >= enter, 1.0, np.where(x < exit, 0.0, np.nan))
    state = pd.Series(state, index=spi.index).ffill().fillna(0.0)
    return state.astype(bool).rename("in_episode")


def episode_source(contribution: pd.DataFrame, *, groups: Mapping[str, tuple[str, ...]] = EPISODE_GROUPS,
                   dominance: float = DOMINANCE) -> tuple[str, dict[str, float]]:
    """(label, shares) for the contributions of an episode's bars (see the module rule)."""
    positive = contribution.clip(lower=0.0).sum(axis=0, skipna=True)
    sums = {g: float(positive.reindex(list(members)).fillna(0.0).sum()) for g, members in groups.items()}
    total = sum(sums.values())
    if not total > 0:
        return MIXED, dict.fromkeys(groups, 0.0)
    shares = {g: v / total for g, v in sums.items()}
    best = max(shares, key=lambda g: shares[g])  # first group wins an exact tie (dict order)
    return (best if shares[best] >= dominance else MIXED), shares


def drawdown(close: np.ndarray) -> float:
    """Largest peak-to-trough fall of ``close`` as a fraction (NaN without finite prices)."""
    c = pd.Series(np.asarray(close, dtype=np.float64)).ffill().dropna().to_numpy()
    if not len(c):
        return math.nan
    peak = np.maximum.accumulate(c)
    return float(np.max(1.0 - c / peak))


def detect_episodes(
    spi: pd.Series,
    *,
    contribution: pd.DataFrame | None = None,
    close: pd.Series | None = None,
    enter: float = ENTER,
    exit: float = EXIT,
    groups: Mapping[str, tuple[str, ...]] = EPISODE_GROUPS,
    dominance: float = DOMINANCE,
) -> list[Episode]:
    """Episodes in an SPI series (index = bar start), oldest first.

    ``contribution`` (SpiResult.contribution) gives the source label, ``close`` the drawdown;
    without them the label is "mixed" and the drawdown NaN.
    """
    inside = in_episode(spi, enter=enter, exit=exit).to_numpy()
    edges = np.diff(np.concatenate(([False], inside, [False])).astype(np.int8))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # stop = first bar after
    x = spi.to_numpy(dtype=np.float64)
    index = spi.index
    closes = None if close is None else close.reindex(index).to_numpy(dtype=np.float64)
    episodes = []
    for a, b in zip(starts, stops, strict=True):  # one iteration per episode, not per bar
        peak = a + int(np.nanargmax(x[a:b]))
        if contribution is not None:
            source, shares = episode_source(contribution.iloc[a:b], groups=groups, dominance=dominance)
        else:
            source, shares = MIXED, {}
        episodes.append(Episode(
            start=int(index[a]),
            peak_time=int(index[peak]),
            peak_spi=float(x[peak]),
            end=int(index[b]) if b < len(index) else None,
            bars=int(b - a),
            drawdown=drawdown(closes[a:b]) if closes is not None else math.nan,
            source=source,
            shares=shares,
        ))
    return episodes
