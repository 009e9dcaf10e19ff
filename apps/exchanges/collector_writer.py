"""The collector's writer: the one process (or thread) that does its database work, and the work done there.

Everything handed to the writer runs in submission order, so batches and backfills stay ordered. The
process starts through writer_process.writer_init; functions sent to it travel by name, so they are
module-level (batches_write here, the services' functions).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from django import db

from apps.exchanges.services import FeedBatch, TradesResult, adapter_get, stream_batch_ingest
from apps.exchanges.writer_process import writer_init

logger = logging.getLogger("apps.exchanges.collector")  # the collector's messages keep its logger name

# The ccxt trade keys the writer reads (normalize.trade_row); the raw `info` stays behind.
_TRADE_KEYS = ("id", "timestamp", "price", "amount", "side", "takerOrMaker", "symbol", "error")


class CollectorWriter:
    """The single writer of a collector: a spawned process (``kind="process"``) or a thread."""

    def __init__(self, *, kind: str, api_base: str | None, ws_base: str | None):
        if kind not in ("process", "thread"):
            raise ValueError(f"writer must be 'process' or 'thread', not {kind!r}")
        self.kind = kind
        self.api_base, self.ws_base = api_base, ws_base
        self._executor = self._start()

    def _start(self) -> Executor:
        if self.kind == "thread":
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix="collector-writer")
        databases = {alias: dict(db.connections[alias].settings_dict) for alias in db.connections}
        return ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=writer_init,
            initargs=(os.getpid(), databases, self.api_base, self.ws_base),
        )

    def submit(self, fn, *args, **kwargs) -> asyncio.Future:
        """Run blocking (ORM) work in the writer, in submission order. `fn` must be a module-level
        function (it is sent to the writer process by name)."""
        loop = asyncio.get_running_loop()
        call = functools.partial(writer_call, fn, *args, **kwargs)
        try:
            return loop.run_in_executor(self._executor, call)
        except BrokenProcessPool:
            # The writer died (killed, out of memory): what it held comes back through backfill.
            logger.error("collector: the writer process died; starting a new one")
            self._executor = self._start()
            return loop.run_in_executor(self._executor, call)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


def batch_slim(batch: FeedBatch) -> FeedBatch:
    """The batch as sent to the writer: trades cut to the keys it reads (pickling `info` costs more
    than parsing it did)."""
    batch.trades = [{k: t.get(k) for k in _TRADE_KEYS} if isinstance(t, dict) else t for t in batch.trades]
    return batch


# --------------------------------------------------------------------------- writer side

_writer_feeds: dict[tuple[str, int], object] = {}


def writer_call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    finally:
        db.close_old_connections()


def batches_write(items: list[tuple[int, object, FeedBatch]], *, window: float, publish: bool,
                  record_lag: bool, token: str = "") -> tuple[list[TradesResult], list[int]]:
    """Store one flush: per feed, its batch in one transaction. Returns the results and, with
    `record_lag`, each trade's lag from exchange time to committed (ms)."""
    from apps.exchanges.models import Feed

    out, lags = [], []
    for feed_id, contract_size, batch in items:
        feed = _writer_feeds.get((token, feed_id))
        if feed is None:
            feed = _writer_feeds[token, feed_id] = Feed.objects.select_related("source", "instrument__exchange").get(
                pk=feed_id)
        adapter = adapter_get(feed.source.slug)
        out.append(stream_batch_ingest(batch=batch, feed=feed, adapter=adapter, contract_size=contract_size,
                                       window_s=window, publish=publish))
        if record_lag and batch.trades:
            done = int(time.time() * 1000)
            lags.extend(done - t["timestamp"] for t in batch.trades if t.get("timestamp"))
    return out, lags
