"""Incremental SPI: feed batches of events, get the SPI for the bars each batch touched.

The state is what the next bar's figures can depend on, nothing more:

- the last ``lookback(config)`` bars of per-bar statistics plus the open (latest) bar,
- the last ``config.window`` bars of component values plus the open bar (robust z window),
- the :class:`~apps.pressure.indicators.pipeline.Carry` (recent trade sizes, the partly filled
  VPIN bucket and recent bucket imbalances, last close, last quote and mid).

An update computes the batch's statistics on the bars from the open bar to the newest event,
adds them to the open bar's (sums add, carried values take the newer), recomputes components
on that short tail and z-scores only the touched rows. Fed the same events in any batching, it
gives the batch pipeline's figures (up to float round-off in rolling sums), as long as
``config.vpin_bucket_volume`` is fixed (otherwise the first batch sets it).

The state is plain numpy/pandas, so an instance can be pickled (e.g. into a cache) between
tasks. Events older than the open bar are refused: late data needs a recomputation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import index
from ._bars import bar_grid
from .pipeline import (
    LAST_COLUMNS,
    BookSamples,
    Carry,
    Quotes,
    SpiConfig,
    Trades,
    bar_stats,
    components_from_stats,
    lookback,
    spi_from_components,
)


class SpiStream:
    """Stateful SPI for one instrument. ``update`` returns an :class:`index.SpiResult` with the
    rows of the bars the batch touched (the first call: every bar of its events)."""

    def __init__(self, config: SpiConfig | None = None):
        self.config = config or SpiConfig()
        self.carry = Carry()
        self.stats: pd.DataFrame | None = None
        self.components: pd.DataFrame | None = None
        self.families: set[str] = set()
        self._external_columns: set[str] = set()

    @property
    def open_bar(self) -> int | None:
        """Start of the latest bar (still open to more events), None before any data."""
        return None if self.stats is None or not len(self.stats) else int(self.stats.index[-1])

    def update(
        self,
        *,
        trades: Trades | None = None,
        quotes: Quotes | None = None,
        book: BookSamples | None = None,
        external: pd.DataFrame | None = None,
        now_ms: int | None = None,
    ) -> index.SpiResult:
        """Add one batch (each stream sorted by time, none older than the open bar).

        ``now_ms`` advances the clock without events (bars in between are empty).
        """
        cfg = self.config
        for name, stream in (("trades", trades), ("quotes", quotes), ("book", book)):
            if stream is not None:
                self.families.add(name)
        # A stream seen before but quiet in this batch still rolls its carried values forward.
        if trades is None and "trades" in self.families:
            trades = Trades.empty()
        if quotes is None and "quotes" in self.families:
            quotes = Quotes.empty()
        if book is None and "book" in self.families:
            book = BookSamples.empty(self.carry.bands)
        times = [int(s.time_ms[i]) for s in (trades, quotes, book) if s is not None and len(s) for i in (0, -1)]
        if external is not None and len(external):
            times += [int(external.index.min()), int(external.index.max())]
            self._external_columns.update(external.columns)
        if now_ms is not None:
            times.append(int(now_ms))
        if not times:
            return spi_from_components(pd.DataFrame(), config=cfg, last=0)
        start = self.open_bar
        if start is None:
            start = min(times)
        elif min(times) < start:
            raise ValueError(f"events at {min(times)} are older than the open bar {start}")
        grid = bar_grid(start, max(times), interval_ms=cfg.interval_ms)

        new, carry = bar_stats(trades=trades, quotes=quotes, book=book, external=external, config=cfg, grid=grid,
                               carry=self.carry)
        stats = new if self.stats is None else self._merge(self.stats, new)
        k = len(grid)
        tail = stats.iloc[-(lookback(cfg) + k):]
        fresh = components_from_stats(tail, config=cfg, bands=carry.bands).iloc[-k:]
        components = fresh if self.components is None else pd.concat([self.components.iloc[:-1], fresh])
        components = components.iloc[-(cfg.window + k):]
        result = spi_from_components(components, config=cfg, last=k)

        self.stats = stats.iloc[-(lookback(cfg) + 1):]
        self.components = components.iloc[-(cfg.window + 1):]
        self.carry = carry
        return result

    def _merge(self, old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
        """Old rows, then the open bar with the batch added to it, then the batch's newer bars."""
        columns = old.columns.union(new.columns, sort=False)
        prev = old.iloc[-1:].reindex(columns=columns)
        head = new.iloc[:1].reindex(columns=columns)
        carried = [c for c in columns if c in LAST_COLUMNS or c in self._external_columns]
        a, b = head.to_numpy(dtype=float), prev.to_numpy(dtype=float)
        is_sum = np.array([c not in carried for c in columns])
        both_nan = np.isnan(a) & np.isnan(b)
        added = np.where(both_nan, np.nan, np.nan_to_num(a) + np.nan_to_num(b))
        newer = np.where(np.isnan(a), b, a)
        merged = pd.DataFrame(np.where(is_sum, added, newer), index=head.index, columns=columns)
        return pd.concat([old.iloc[:-1].reindex(columns=columns), merged, new.iloc[1:].reindex(columns=columns)])
