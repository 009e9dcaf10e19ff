"""Writes for live exchange data, one module per capability:

- :mod:`.sources`: the source registry, adapters per process, and :func:`source_call`, the
  rate-limit gate every request passes (a ban seen by one worker stops all of them);
- :mod:`.trades`: trades and books over REST, and the collector's stream batches;
- :mod:`.polls`: derivatives context (funding, open interest, taker statistics, liquidations, DVOL, IV).

The names below are the package's interface (tasks, the collector, commands and tests use them).
"""

from apps.exchanges.adapters import ADAPTERS, InstrumentSpec
from apps.exchanges.services.polls import (
    dvol_poll,
    funding_poll,
    liquidations_ingest,
    liquidations_poll,
    open_interest_poll,
    option_iv_poll,
    taker_ratio_poll,
)
from apps.exchanges.services.sources import (
    SourceDeferred,
    SourceRequestFailed,
    _adapters,
    adapter_get,
    adapters_point_at,
    feed_add,
    feed_ensure,
    feeds_for,
    registry_sync,
    source_call,
    source_ensure,
    source_outcome_record,
    sources_reset,
    spec_of,
    symbol_split,
)
from apps.exchanges.services.trades import (
    MAX_PAGES,
    FeedBatch,
    TradesResult,
    book_snapshot_poll,
    feed_cursor,
    feed_cursor_advance,
    feeds_disconnected_mark,
    stream_batch_ingest,
    trades_backfill,
    trades_ingest,
    trades_poll,
)

__all__ = [
    "ADAPTERS",
    "MAX_PAGES",
    "FeedBatch",
    "InstrumentSpec",
    "SourceDeferred",
    "SourceRequestFailed",
    "TradesResult",
    "_adapters",
    "adapter_get",
    "adapters_point_at",
    "book_snapshot_poll",
    "dvol_poll",
    "feed_add",
    "feed_cursor",
    "feed_cursor_advance",
    "feed_ensure",
    "feeds_disconnected_mark",
    "feeds_for",
    "funding_poll",
    "liquidations_ingest",
    "liquidations_poll",
    "open_interest_poll",
    "option_iv_poll",
    "registry_sync",
    "source_call",
    "source_ensure",
    "source_outcome_record",
    "sources_reset",
    "spec_of",
    "stream_batch_ingest",
    "symbol_split",
    "taker_ratio_poll",
    "trades_backfill",
    "trades_ingest",
    "trades_poll",
]
