"""Selling-pressure episodes from a series of final SPI values, with hysteresis and a source label.

An episode is confirmed once the SPI has been at or above ``enter`` (the high regime's threshold,
per bar: calibrated thresholds move daily) for ``confirm`` consecutive bars; it starts at the first
of them. It ends once the SPI has been below ``exit`` (the elevated threshold) for ``persist``
consecutive bars, at the first of those; in between it stays open whatever the SPI does, so it
neither flickers around one threshold nor splits on one calm bar. A NaN SPI bar breaks a run.
``end`` is the start of the bar that ended it (None while still open); the episode covers the bars
start <= t < end; ``confirmed`` is the bar on which it became known (alerts fire then).

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
    confirmed: int
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


def _per_bar(value, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))


def episode_spans(spi: pd.Series, *, enter=ENTER, exit=EXIT, confirm: int = 1,
                  persist: int = 1) -> list[tuple[int, int, int | None]]:
    """(start, confirmed, stop) positions of each episode; stop is the first bar after it (None: open)."""
    x = spi.to_numpy(dtype=np.float64)
    n = len(x)
    hi, lo = _per_bar(enter, n), _per_bar(exit, n)
    if np.any(lo > hi):
        raise ValueError("exit threshold must not exceed enter threshold")
    above = x >= hi  # NaN compares False: it breaks a run
    below = x < lo
    spans: list[tuple[int, int, int | None]] = []
    i = 0
    while i < n:
        # Outside: the next run of `confirm` bars above.
        run = 0
        while i < n and run < confirm:
            run = run + 1 if above[i] else 0
            i += 1
        if run < confirm:
            break
        start, confirmed = i - confirm, i - 1
        run = 0
        while i < n and run < persist:
            run = run + 1 if below[i] else 0
            i += 1
        # A calm bar is never above (exit <= enter), so the next confirmation can start right after.
        spans.append((start, confirmed, i - persist if run >= persist else None))
    return spans


def in_episode(spi: pd.Series, *, enter=ENTER, exit=EXIT, confirm: int = 1, persist: int = 1) -> pd.Series:
    """Boolean per bar: inside an episode."""
    inside = np.zeros(len(spi), dtype=bool)
    for start, _, stop in episode_spans(spi, enter=enter, exit=exit, confirm=confirm, persist=persist):
        inside[start:len(spi) if stop is None else stop] = True
    return pd.Series(inside, index=spi.index, name="in_episode")


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
    enter=ENTER,
    exit=EXIT,
    confirm: int = 1,
    persist: int = 1,
    groups: Mapping[str, tuple[str, ...]] = EPISODE_GROUPS,
    dominance: float = DOMINANCE,
) -> list[Episode]:
    """Episodes in an SPI series (index = bar start), oldest first.

    ``enter``/``exit``: numbers or per-bar arrays. ``contribution`` (SpiResult.contribution) gives the
    source label, ``close`` the drawdown; without them the label is "mixed" and the drawdown NaN.
    """
    x = spi.to_numpy(dtype=np.float64)
    index = spi.index
    closes = None if close is None else close.reindex(index).to_numpy(dtype=np.float64)
    episodes = []
    for a, c, stop in episode_spans(spi, enter=enter, exit=exit, confirm=confirm, persist=persist):
        b = len(x) if stop is None else stop
        peak = a + int(np.nanargmax(x[a:b]))
        if contribution is not None:
            source, shares = episode_source(contribution.iloc[a:b], groups=groups, dominance=dominance)
        else:
            source, shares = MIXED, {}
        episodes.append(Episode(
            start=int(index[a]),
            confirmed=int(index[c]),
            peak_time=int(index[peak]),
            peak_spi=float(x[peak]),
            end=None if stop is None else int(index[stop]),
            bars=int(b - a),
            drawdown=drawdown(closes[a:b]) if closes is not None else math.nan,
            source=source,
            shares=shares,
        ))
    return episodes


OUTCOME_MIN_COUNT = 5  # episodes a label needs before its outcomes are compared with the others'


def outcomes_by_source(duration_minutes, drawdown, source) -> dict[str, dict]:
    """How past (ended) episodes went, per source label: count, median and 90th percentile of duration
    (minutes) and drawdown (fraction), and whether they differ from the other labels' episodes.

    ``differs`` is None below OUTCOME_MIN_COUNT episodes on either side, else True when a two-sided
    Mann-Whitney U test finds the label's durations or drawdowns different from the rest's at the 5% level.
    """
    from scipy.stats import mannwhitneyu

    frame = pd.DataFrame({"duration": np.asarray(duration_minutes, dtype=np.float64),
                          "drawdown": np.asarray(drawdown, dtype=np.float64), "source": list(source)})
    out: dict[str, dict] = {}
    for label, group in frame.groupby("source", sort=True):
        rest = frame[frame["source"] != label]
        row = {"count": len(group)}
        for name in ("duration", "drawdown"):
            row[f"{name}_median"] = float(group[name].median())
            row[f"{name}_p90"] = float(group[name].quantile(0.9))
        differs = None
        if len(group) >= OUTCOME_MIN_COUNT and len(rest) >= OUTCOME_MIN_COUNT:
            differs = any(mannwhitneyu(group[name], rest[name], alternative="two-sided").pvalue < 0.05
                          for name in ("duration", "drawdown") if group[name].nunique() + rest[name].nunique() > 2)
        row["differs"] = differs
        out[str(label)] = row
    return out
