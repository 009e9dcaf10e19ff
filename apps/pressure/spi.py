"""The Selling Pressure Index over stored bars of any interval: components from bar fields, then the pure index.

Every component is a per-bar series computed from what the bars hold (taker flow, trade counts,
large-trade share, OFI, book imbalance and depth, spread, close); the robust z-scores, weights,
regimes and episodes are the pure functions in apps.pressure.indicators. Windows look only
backwards, so recomputing a stored bar gives the same value: the series is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from django.conf import settings

from apps.pressure.indicators import index, kyle, orderbook, orderflow

BAR_COLUMNS = ["bucket_ms", "close", "taker_buy_base", "taker_sell_base", "buy_trades", "sell_trades",
               "large_trade_sell_share", "ofi", "imbalance_0_1pct", "spread_bps", "bid_depth_0_5pct"]


def weights() -> Mapping[str, float]:
    return getattr(settings, "SPI_WEIGHTS", None) or index.DEFAULT_WEIGHTS


def components_from_bars(bars: pd.DataFrame, external: pd.DataFrame | None = None, *,
                         interval_ms: int = 60_000) -> pd.DataFrame:
    """Raw component values per bar (index: bucket_ms on a gap-free grid of `interval_ms`).

    Bars imported from klines carry no trade-count split, no large-trade sums and no book fields:
    those components are missing there (NaN), and the index renormalises over the others.
    """
    grid = np.arange(bars.index.min(), bars.index.max() + interval_ms, interval_ms)
    b = bars.reindex(grid)
    buy, sell = b["taker_buy_base"].fillna(0.0), b["taker_sell_base"].fillna(0.0)
    volume = buy + sell
    delta = buy - sell
    trades = b["buy_trades"].fillna(0) + b["sell_trades"].fillna(0)
    window = settings.SPI_COMPONENT_WINDOW
    # Columns gathered first and framed once: inserting them one by one costs more than computing them.
    out = pd.DataFrame({
        "taker_sell_ratio": (sell / volume).where(volume > 0),
        "cvd_slope": orderflow.cvd_slope(delta, window=window),
        "trade_count_imbalance": ((b["buy_trades"] - b["sell_trades"]) / trades).where(trades > 0),
        "large_trade_sell_share": b["large_trade_sell_share"],
        # A bar proxy of VPIN, not Easley et al.'s volume buckets: |buy - sell| over volume across the
        # last VPIN_BUCKETS bars (volume-weighted).
        "vpin": (delta.abs().rolling(settings.VPIN_BUCKETS, min_periods=5).sum()
                 / volume.rolling(settings.VPIN_BUCKETS, min_periods=5).sum()).where(volume.rolling(5).sum() > 0),
        "kyles_lambda": kyle.kyles_lambda(b["close"].ffill(), delta, window=window),
        "ofi": b["ofi"],
        "imbalance": b["imbalance_0_1pct"],
        "bid_withdrawal": orderbook.bid_withdrawal(b["bid_depth_0_5pct"], window=window, min_periods=10),
        "spread_widening": orderbook.spread_widening(b["spread_bps"], window=window, min_periods=10),
    })
    if external is not None and not external.empty:
        out = out.join(external.reindex(grid), how="left")
    return out.astype(np.float64)


def spi_rows(bars: pd.DataFrame, *, last: int, external: pd.DataFrame | None = None,
             interval_ms: int = 60_000) -> list[dict]:
    """SPI rows (bucket_ms, spi, regime, components, missing) for the last `last` bars of `bars`.

    The regime here uses the fixed default thresholds; final bars get their instrument's calibrated
    regime when they are finalised (apps.pressure.services.bars_finalize)."""
    wanted = bars.index[-last:] if last > 0 else bars.index[:0]
    if not len(wanted):
        return []
    components = components_from_bars(bars, external, interval_ms=interval_ms)
    # Only the grid rows from the first wanted bar on are scored; each still sees its whole window.
    rows_on_grid = (int(components.index[-1]) - int(wanted[0])) // interval_ms + 1
    result = index.spi(
        components, weights=weights(), signs=index.SIGNS, window=settings.SPI_WINDOW_BARS,
        min_periods=settings.SPI_MIN_PERIODS, clip=settings.SPI_CLIP, thresholds=settings.SPI_REGIME_THRESHOLDS,
        last=rows_on_grid,
    )
    return result.rows(wanted)
