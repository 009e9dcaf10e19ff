"""A Binance raw-feed recording, parsed once per process into replayable events.

The raw messages go through the same parser and order-book synchroniser the live
collector uses; what comes out (trades and sampled book summaries) is exactly what a live
source hands to the ingestion service.

Parsing takes 5-10 s a file, so each process also keeps what it parsed on disk (joblib.Memory in
``REPLAY_CACHE_DIR``), keyed by the files (path, size, modification time), the sampling settings and the
source of the modules that parse: a worker that restarts, or another process, loads it in a fraction of a
second, and a changed file or parser is parsed again.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from django.conf import settings

from apps.markets import orderbook
from apps.markets.feeds import binance
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
    malformed_reasons: tuple[tuple[str, int], ...]
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
        malformed_reasons=tuple(sorted(stats.reasons.items())),
        sequence_gaps=sync.gaps if sync else 0,
    )


def _parse_files(files: tuple[tuple[str, int, int], ...], sample_ms: int, bands: tuple[float, ...],
                 parser: str) -> Recording:
    """_parse by (path, size, mtime_ns) and the parser's source hash: the arguments joblib keys its cache by."""
    return _parse(tuple(Path(path) for path, _, _ in files), sample_ms, bands)


@functools.cache
def _parser_version() -> str:
    sources = (Path(m.__file__).read_bytes() for m in (binance, orderbook, sys.modules[__name__]))
    return hashlib.sha256(b"".join(sources)).hexdigest()


@functools.cache
def _cached_parse():
    if not settings.REPLAY_CACHE_DIR:
        return _parse_files
    return joblib.Memory(settings.REPLAY_CACHE_DIR, verbose=0).cache(_parse_files)


@functools.lru_cache(maxsize=16)
def recording_load(paths: tuple[str, ...], sample_ms: int, bands: tuple[float, ...]) -> Recording:
    files = tuple((p, (st := Path(p).stat()).st_size, st.st_mtime_ns) for p in paths)
    recording = _cached_parse()(files, sample_ms, tuple(bands), _parser_version())
    if recording.malformed:
        logger.warning("recording %s: skipped %d malformed lines %s", paths, recording.malformed,
                       dict(recording.malformed_reasons))
    return recording
