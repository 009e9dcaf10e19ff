"""Feeding recorded Binance data through the live ingestion path, shifted to now."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction

from apps.markets.services import instrument_ensure
from apps.markets.validation import TradeRow
from apps.pressure.services import market_batch_ingest
from apps.replay.models import ReplayStream
from apps.replay.recording import Recording, recording_load

logger = logging.getLogger(__name__)

REPLAY_EXCHANGE = "binance-replay"
CHUNK_MS = 60_000  # one transaction per replayed minute keeps catch-up batches bounded


@dataclass(frozen=True)
class StreamSpec:
    name: str
    market: str
    symbol: str
    base: str
    quote: str
    kind: str
    files: tuple[str, ...]


# The bundled dataset (data/replay, MIT, see SOURCE.txt there).
STREAMS = (
    StreamSpec("binance-spot-btcusdt", "spot", "BTCUSDT", "BTC", "USDT", "spot",
               ("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz")),
    StreamSpec("binance-spot-ethusdt", "spot", "ETHUSDT", "ETH", "USDT", "spot", ("spot_ethusdt_20240808.gz",)),
    StreamSpec("binance-usdm-btcusdt", "usdm", "BTCUSDT", "BTC", "USDT", "perp", ("usdm_btcusdt_20240808.gz",)),
)


def now_ms() -> int:
    return int(time.time() * 1000)


def stream_recording(stream: ReplayStream) -> Recording:
    paths = tuple(str(settings.REPLAY_DIR / name) for name in stream.files)
    return recording_load(paths, settings.BOOK_SAMPLE_INTERVAL_MS, tuple(settings.BOOK_DEPTH_BANDS))


def replay_streams_ensure(*, history_minutes: int, reset: bool = False) -> list[ReplayStream]:
    """Create the replay instruments and streams; new (or reset) streams start history_minutes ago."""
    anchor = now_ms() - history_minutes * 60_000
    streams = []
    for spec in STREAMS:
        instrument = instrument_ensure(
            exchange_slug=REPLAY_EXCHANGE, exchange_name="Binance (REPLAY)", is_replay=True,
            market=spec.market, symbol=spec.symbol, base=spec.base, quote=spec.quote, kind=spec.kind,
        )
        stream, created = ReplayStream.objects.get_or_create(
            name=spec.name, defaults={"instrument": instrument, "files": list(spec.files), "anchor_ms": anchor}
        )
        if reset and not created:
            stream.anchor_ms, stream.clock_ms = anchor, -1
            stream.save(update_fields=["anchor_ms", "clock_ms", "updated_at"])
        streams.append(stream)
    return streams


def _window(rec: Recording, clock_from: int, clock_to: int) -> tuple[list[TradeRow], list]:
    """Events with replay clock in (clock_from, clock_to], across loop boundaries."""
    period = rec.period_ms
    trades: list[TradeRow] = []
    books: list = []
    for loop in range(max(clock_from, 0) // period, clock_to // period + 1):
        base = loop * period
        lo, hi = clock_from - base, clock_to - base
        t0, t1 = np.searchsorted(rec.trade_clock, [lo, hi], side="right")
        id_shift = loop * rec.id_span
        for i in range(t0, t1):
            trades.append(TradeRow(
                int(rec.trade_ids[i]) + id_shift, int(rec.trade_clock[i]) + base, rec.trade_prices[i],
                rec.trade_qtys[i], bool(rec.trade_sells[i]),
            ))
        b0, b1 = np.searchsorted(rec.book_clock, [lo, hi], side="right")
        for i in range(b0, b1):
            books.append(dataclasses.replace(rec.book_samples[i], time_ms=int(rec.book_clock[i]) + base))
    return trades, books


def replay_advance(
    *, stream_id: int, until_ms: int | None = None, progress: Callable[[int, int], None] | None = None,
    publish: bool = True,
) -> int:
    """Feed a stream's events up to `until_ms` (wall time); returns trades inserted."""
    stream = ReplayStream.objects.select_related("instrument__exchange").get(pk=stream_id)
    if not stream.enabled:
        return 0
    rec = stream_recording(stream)
    target = int(((until_ms or now_ms()) - stream.anchor_ms) * settings.REPLAY_SPEED)
    backlog_limit = settings.REPLAY_HISTORY_MINUTES * 60_000
    clock = stream.clock_ms
    if target - clock > backlog_limit:
        # The app was stopped for a while: skip ahead rather than replay hours in a burst.
        logger.info("replay %s: skipping %d s of backlog", stream.name, (target - clock - backlog_limit) // 1000)
        clock = target - backlog_limit
        ReplayStream.objects.filter(pk=stream.pk, clock_ms=stream.clock_ms).update(clock_ms=clock)
    inserted = 0
    start = clock
    while clock < target:
        step_to = min(target, clock + CHUNK_MS)
        with transaction.atomic():
            # Claim the window; a concurrent tick that got here first makes this a no-op.
            if not ReplayStream.objects.filter(pk=stream.pk, clock_ms=clock).update(clock_ms=step_to):
                return inserted
            trades, books = _window(rec, clock, step_to)
            shift = stream.anchor_ms
            trades = [t._replace(time_ms=t.time_ms + shift) for t in trades]
            books = [dataclasses.replace(b, time_ms=b.time_ms + shift) for b in books]
            if trades or books:
                result = market_batch_ingest(
                    instrument=stream.instrument, trades=trades, book_samples=books,
                    source=f"replay:{stream.name}", publish=publish,
                )
                inserted += result.trades_inserted
        clock = step_to
        if progress:
            progress(clock - start, target - start)
    return inserted


def replay_tick() -> int:
    """Advance every enabled stream to now."""
    total = 0
    for stream_id in ReplayStream.objects.filter(enabled=True).values_list("pk", flat=True):
        try:
            total += replay_advance(stream_id=stream_id)
        except Exception:
            logger.exception("replay stream %s failed", stream_id)
            raise
    return total
