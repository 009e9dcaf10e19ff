"""A Binance raw-feed recording, parsed once per process into replayable events.

The raw messages go through the same parser and order-book synchroniser the live
collector uses; what comes out (trades and sampled book summaries) is exactly what a live
source hands to the ingestion service.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apps.markets.feeds.binance import DepthDiffMsg, DepthSnapshotMsg, FileStats, TradeMsg, iter_file
from apps.markets.orderbook import BookSummary, BookSynchronizer

logger = logging.getLogger(__name__)
LOOP_GAP_MS = 1_000


@dataclass(frozen=True)
class Recording:
    """Events on the recording's own clock: ms since its first event."""

    symbol: str
    start_ms: int
    duration_ms: int
    trade_clock: np.ndarray  # int64, sorted
    trade_ids: np.ndarray  # int64
    trade_prices: tuple[str, ...]
    trade_qtys: tuple[str, ...]
    trade_sells: np.ndarray  # bool
    book_clock: np.ndarray  # int64, sorted
    book_samples: tuple[BookSummary, ...]
    id_span: int
    malformed: int
    sequence_gaps: int

    @property
    def period_ms(self) -> int:
        """One loop: the recording plus a short pause, so loops never overlap in time."""
        return self.duration_ms + LOOP_GAP_MS


def _parse(paths: tuple[Path, ...], sample_ms: int, bands: tuple[float, ...]) -> Recording:
    trades: list[TradeMsg] = []
    samples: list[BookSummary] = []
    sync: BookSynchronizer | None = None
    stats = FileStats()
    symbol = ""
    for path in paths:
        for _, msg in iter_file(path, stats=stats):
            if isinstance(msg, TradeMsg):
                trades.append(msg)
                symbol = msg.symbol
            elif isinstance(msg, DepthDiffMsg):
                sync = sync or BookSynchronizer(msg.symbol, bands=bands)
                summary = sync.on_diff(msg)
                if summary is not None:
                    samples.append(summary)
            elif isinstance(msg, DepthSnapshotMsg):
                sync = sync or BookSynchronizer(msg.symbol, bands=bands)
                summary = sync.on_snapshot(msg)
                if summary is not None:
                    samples.append(summary)
    if not trades:
        raise ValueError(f"no trades in {', '.join(map(str, paths))}")
    trades.sort(key=lambda t: (t.time_ms, t.trade_id))
    # Keep the last summary of each sampling interval: the book as it stood at its end.
    sampled: dict[int, BookSummary] = {}
    for s in samples:
        sampled[s.time_ms // sample_ms] = s
    book = sorted(sampled.values(), key=lambda s: s.time_ms)
    start = min([trades[0].time_ms] + ([book[0].time_ms] if book else []))
    end = max([trades[-1].time_ms] + ([book[-1].time_ms] if book else []))
    ids = np.array([t.trade_id for t in trades], dtype=np.int64)
    if stats.malformed:
        logger.warning("recording %s: skipped %d malformed lines %s", paths, stats.malformed, dict(stats.reasons))
    return Recording(
        symbol=symbol,
        start_ms=start,
        duration_ms=end - start + 1,
        trade_clock=np.array([t.time_ms for t in trades], dtype=np.int64) - start,
        trade_ids=ids,
        trade_prices=tuple(t.price for t in trades),
        trade_qtys=tuple(t.qty for t in trades),
        trade_sells=np.array([t.taker_sell for t in trades], dtype=bool),
        book_clock=np.array([s.time_ms for s in book], dtype=np.int64) - start,
        book_samples=tuple(book),
        id_span=int(ids.max() - ids.min() + 1),
        malformed=stats.malformed,
        sequence_gaps=sync.gaps if sync else 0,
    )


@functools.lru_cache(maxsize=16)
def recording_load(paths: tuple[str, ...], sample_ms: int, bands: tuple[float, ...]) -> Recording:
    return _parse(tuple(Path(p) for p in paths), sample_ms, bands)
