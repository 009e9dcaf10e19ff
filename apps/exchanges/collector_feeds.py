"""What the streaming collector keeps per feed and per run, and where a frame ccxt.pro rejected is counted.

Event-loop side only: the writer never sees these objects, only the batches they fill.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from apps.exchanges.adapters import ExchangeAdapter, InstrumentSpec
from apps.exchanges.services import FeedBatch

logger = logging.getLogger("apps.exchanges.collector")  # the collector's messages keep its logger name


@dataclass
class FeedState:
    """What the collector tracks per feed between flushes (event-loop side only)."""

    feed: object
    adapter: ExchangeAdapter
    spec: InstrumentSpec
    contract_size: object = None
    batch: FeedBatch = None
    last_id: int | None = None
    backfill_pending: bool = True  # a fresh start may follow a crash: close the gap first
    backfill_until: int | None = None
    backfill_running: bool = False
    gap_epoch: int = 0
    held_max_id: int | None = None  # highest id written while the cursor was held
    last_book_sample_ms: int = 0
    last_book_update_ms: int = 0
    connected: bool = False

    def new_batch(self) -> FeedBatch:
        self.batch = FeedBatch(feed_id=self.feed.pk, advance_cursor=not self.backfill_pending)
        return self.batch


@dataclass
class Stats:
    messages: int = 0
    trades: int = 0
    flushes: int = 0
    stored: int = 0
    backfills: int = 0
    reconnects: int = 0
    book_resyncs: int = 0
    lags_ms: list[int] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


def rejected_drain(*, exchanges: dict[str, object], feeds: Iterable[FeedState]) -> None:
    """Frames ccxt.pro could not parse: counted on the feed of their symbol (or the source's first)."""
    feeds = list(feeds)
    for slug, ex in exchanges.items():
        queue = getattr(ex, "rejected_messages", None)
        of_source = [st for st in feeds if st.feed.source.slug == slug]
        while queue and of_source:
            reason, message = queue.popleft()
            symbol = _message_symbol(message)
            st = next((f for f in of_source if f.spec.symbol == symbol), of_source[0])
            st.batch.rejected += 1
            st.batch.reasons[reason] = st.batch.reasons.get(reason, 0) + 1
            logger.warning("%s: rejected a message: %s: %.200r", slug, reason, message)


def _message_symbol(message) -> str | None:
    if isinstance(message, dict):
        data = message.get("data") if isinstance(message.get("data"), dict) else message
        for key in ("s", "symbol", "instId", "product_id"):
            if isinstance(data.get(key), str):
                return data[key]
    return None
