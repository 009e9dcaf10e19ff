"""The long-lived streaming collector behind ``manage.py collect``.

One asyncio process holds a ccxt.pro connection per source. Watch loops only append what ccxt
parsed to an in-memory batch; a flusher hands the batch to the ingestion service in a worker
thread every ``batch_ms`` (or at ``batch_max`` messages), so a burst or a slow commit never
stalls the sockets. While a flush runs, messages keep piling into the next batch, which makes
batches bigger exactly when the database is the bottleneck.

Trades that could be missing are fetched over REST from the stored cursor: at start (the
previous run may have died), after every reconnect, and when trade ids jump inside a stream on
exchanges whose ids are contiguous. Until such a backfill has succeeded, stream batches do not
move the cursor, so a crash during it still resumes from before the gap.

Database work runs in one writer process (collector_writer.py; a thread with ``writer="thread"``), which
keeps batches and backfills in order. A process gives the writes their own core: parsing 20,000
messages/s in ccxt.pro already needs half of one, and threads would share the GIL. The writer
dies with the collector (PR_SET_PDEATHSIG), so a killed collector leaves no orphan holding a
transaction. SIGTERM/SIGINT stop the watch loops, flush what is buffered, and exit. Per-feed state
and the count of frames ccxt.pro rejected are in collector_feeds.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import ccxt

from apps.exchanges import ratelimit
from apps.exchanges.collector_feeds import FeedState, Stats, rejected_drain
from apps.exchanges.collector_writer import CollectorWriter, batch_slim, batches_write, writer_call
from apps.exchanges.services import (
    FeedBatch,
    SourceDeferred,
    SourceRequestFailed,
    adapter_get,
    adapters_point_at,
    feed_cursor_advance,
    feeds_disconnected_mark,
    registry_sync,
    spec_of,
    trades_backfill,
)

logger = logging.getLogger(__name__)

FIRST_ID_WAIT_S = 2.0


class Collector:
    def __init__(self, *, sources: list[str] | None = None, api_base: str | None = None,
                 ws_base: str | None = None, batch_ms: int = 250, batch_max: int = 5000, books: bool = True,
                 liquidations: bool = True, book_sample_ms: int = 1000, stale_s: float = 30.0,
                 publish: bool = True, record_lag: bool = False, on_flush: Callable | None = None,
                 writer: str = "process"):
        self.sources = sources
        self.api_base, self.ws_base = api_base, ws_base
        if api_base or ws_base:
            # REST backfills run through the services: they must reach the same servers.
            adapters_point_at(api_base=api_base, ws_base=ws_base)
        self.batch_ms, self.batch_max = batch_ms, batch_max
        self.books, self.liquidations = books, liquidations
        self.book_sample_ms = book_sample_ms
        self.stale_s = stale_s
        self.publish = publish
        self.record_lag = record_lag
        self.on_flush = on_flush
        self.stats = Stats()
        self.stopping = asyncio.Event()
        self._writer = CollectorWriter(kind=writer, api_base=api_base, ws_base=ws_base)
        self.writer = writer
        self._token = f"{os.getpid()}-{id(self)}-{time.monotonic_ns()}"  # keys the writer's feed cache
        self._planner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="collector-plan")
        self._feeds: dict[int, FeedState] = {}
        self._exchanges: dict[str, object] = {}
        self._pending_messages = 0
        self._window_start = time.monotonic()
        self._inflight: asyncio.Future | None = None
        self._wake = asyncio.Event()
        self._writes: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ setup

    def _in_writer(self, fn, *args, **kwargs):
        """Run blocking (ORM) work in the single writer, in submission order (CollectorWriter.submit)."""
        return self._writer.submit(fn, *args, **kwargs)

    def _in_thread(self, fn, *args, **kwargs):
        """Blocking work whose result stays in this process (the feed plan)."""
        return asyncio.get_running_loop().run_in_executor(self._planner, functools.partial(writer_call, fn, *args,
                                                                                           **kwargs))

    def _plan(self) -> list[FeedState]:
        states = []
        for feed in registry_sync(sources=self.sources):
            if feed.source.slug == "deribit-options":
                continue  # volatility is polled by beat, not streamed
            adapter = adapter_get(feed.source.slug, api_base=self.api_base, ws_base=self.ws_base)
            spec = spec_of(feed.instrument)
            try:
                size = adapter.contract_size(adapter.rest, spec)
            except ccxt.BaseError as exc:
                logger.error("%s %s: cannot load markets: %s", feed.source.slug, feed.instrument.symbol, exc)
                continue
            states.append(FeedState(feed=feed, adapter=adapter, spec=spec, contract_size=size))
        return states

    async def run(self) -> Stats:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        # The writer process starts (imports, Django setup) before any stream delivers a trade.
        states, _ = await asyncio.gather(self._in_thread(self._plan), self._in_writer(os.getpid))
        if not states:
            logger.warning("collector: no feeds to collect (check EXCHANGE_SOURCES and the markets)")
        tasks = []
        for st in states:
            st.new_batch()
            self._feeds[st.feed.pk] = st
            slug = st.feed.source.slug
            if slug not in self._exchanges:
                self._exchanges[slug] = st.adapter.pro()
                # ccxt.pro loads markets over async REST on first watch; ours are already loaded.
                self._exchanges[slug].set_markets(st.adapter.rest.markets, st.adapter.rest.currencies)
            ex = self._exchanges[slug]
            tasks.append(asyncio.create_task(self._trades_loop(st, ex), name=f"trades:{slug}:{st.spec.symbol}"))
            if self.books:
                tasks.append(asyncio.create_task(self._book_loop(st, ex), name=f"book:{slug}:{st.spec.symbol}"))
            if self.liquidations and st.adapter.has_liquidation_stream:
                tasks.append(asyncio.create_task(self._liquidation_loop(st, ex), name=f"liq:{slug}:{st.spec.symbol}"))
        # Everything loaded so far (markets, Django, ccxt) lives for the whole run: keep it out of
        # the cyclic collector, and collect young objects less often, so a full collection of a
        # large batch never stalls the sockets for hundreds of milliseconds.
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        for st in states:
            self._start_backfill(st)  # the previous run may have died: resume from the stored cursor
        logger.info("collector: %d feeds on %d sources", len(states), len(self._exchanges))
        flusher = asyncio.create_task(self._flusher(), name="flusher")
        await self.stopping.wait()
        for t in tasks:
            t.cancel()
        await _settled(tasks, "stream tasks")
        flusher.cancel()
        await _settled([flusher], "the flusher")
        if self._inflight is not None:
            await _settled([self._inflight], "the batch being written")
        await self._flush()
        await _settled([x for x in (self._inflight, *self._writes) if x is not None], "writes and backfills")
        await self._in_writer(feeds_disconnected_mark, feed_ids=list(self._feeds))
        for ex in self._exchanges.values():
            with contextlib.suppress(Exception):
                await ex.close()
        self._writer.shutdown()
        self._planner.shutdown(wait=True)
        logger.info("collector stopped: %s", self.summary())
        return self.stats

    @property
    def backfilling(self) -> bool:
        """Some feed is still closing a gap over REST (at start, after a reconnect or an id jump)."""
        return any(st.backfill_pending for st in self._feeds.values())

    def stop(self) -> None:
        logger.info("collector: stopping (flushing what is buffered)")
        self.stopping.set()
        self._wake.set()

    def summary(self) -> dict:
        s = self.stats
        return {"messages": s.messages, "trades": s.trades, "stored": s.stored, "flushes": s.flushes,
                "backfills": s.backfills, "reconnects": s.reconnects, "book_resyncs": s.book_resyncs,
                "seconds": round(time.monotonic() - s.started, 1)}

    # ------------------------------------------------------------------ watch loops

    async def _retry_sleep(self, attempt: int) -> None:
        await self._sleep_or_stop(min(ratelimit.backoff_s(attempt), 30.0))

    async def _failed(self, st: FeedState, exc: BaseException, what: str, attempt: int) -> int:
        """Count and log a failed watch or backfill, then back off; returns the attempt's number."""
        self._error(st, exc, what)
        await self._retry_sleep(attempt + 1)
        return attempt + 1

    def _error(self, st: FeedState, exc: BaseException, what: str) -> None:
        st.batch.stream_errors += 1
        st.batch.last_error = f"{what}: {type(exc).__name__}: {exc}"[:2000]
        logger.warning("%s %s %s: %s: %s", st.feed.source.slug, st.spec.symbol, what, type(exc).__name__,
                       str(exc)[:300])

    async def _trades_loop(self, st: FeedState, ex) -> None:
        attempt = 0
        while not self.stopping.is_set():
            try:
                trades = await st.adapter.watch_trades(ex, st.spec)
            except asyncio.CancelledError:
                raise
            except ccxt.NetworkError as exc:
                attempt += 1
                self._disconnected(st, exc)
                await self._retry_sleep(attempt)
                continue
            except Exception as exc:  # noqa: BLE001 - a parse bug in one message must not end the loop
                attempt = await self._failed(st, exc, "trades", attempt)
                continue
            attempt = 0
            if not st.connected:
                st.connected = True
                st.batch.connected = True
            self._on_trades(st, trades)

    def _disconnected(self, st: FeedState, exc: BaseException) -> None:
        if st.connected:
            self.stats.reconnects += 1
        st.connected = False
        st.batch.connected = False
        self._error(st, exc, "stream")
        # Whatever is published while we are away comes back over REST, up to the first id the
        # new connection delivers (set in _on_trades).
        st.last_id = None
        self._gap(st, None)

    def _on_trades(self, st: FeedState, trades: list[dict]) -> None:
        now = int(time.time() * 1000)
        batch = st.batch
        batch.messages += len(trades)
        batch.first_received_ms = batch.first_received_ms or now
        batch.last_received_ms = now
        self.stats.messages += len(trades)
        self.stats.trades += len(trades)
        self._pending_messages += len(trades)
        start = 0
        if st.adapter.cursor_kind == "id":
            for i, t in enumerate(trades):
                tid = st.adapter.trade_id(t)
                if tid is None:
                    continue
                if st.last_id is None:
                    if st.backfill_pending and st.backfill_until is None:
                        st.backfill_until = tid  # the backfill closes the gap up to here
                elif tid <= st.last_id:
                    # A repeat or a late message: kept (a late trade is still a trade; the unique
                    # id drops a repeat) and counted.
                    st.batch.out_of_order += 1
                    continue
                elif st.adapter.ids_contiguous and tid > st.last_id + 1:
                    # Lost messages inside a connection: fetch exactly the missing ids.
                    logger.warning("%s %s: trade ids jump %d -> %d; backfilling", st.feed.source.slug,
                                   st.spec.symbol, st.last_id, tid)
                    st.batch.trade_gaps += 1
                    st.batch.trades.extend(trades[start:i])
                    start = i
                    self._gap(st, tid)
                st.last_id = tid
        st.batch.trades.extend(trades[start:])
        if self._pending_messages >= self.batch_max:
            self._wake.set()

    def _gap(self, st: FeedState, until: int | None) -> None:
        """Trades may be missing from here on: write what is buffered, hold the cursor, backfill."""
        self._flush_feed_now(st)
        st.gap_epoch += 1
        st.backfill_pending = True
        st.backfill_until = until
        st.batch.advance_cursor = False
        self._start_backfill(st)

    def _start_backfill(self, st: FeedState) -> None:
        if st.backfill_running:
            return  # the running one loops again if a newer gap opened meanwhile
        st.backfill_running = True

        async def run():
            attempt = 0
            while st.backfill_pending and not self.stopping.is_set():
                # Wait briefly for the (re)connected stream's first id: the backfill then stops
                # there instead of chasing a live market page by page. A quiet market has no
                # first id; then the backfill reads until REST has nothing newer.
                waited = 0.0
                while st.backfill_until is None and waited < FIRST_ID_WAIT_S and not self.stopping.is_set():
                    await asyncio.sleep(0.05)
                    waited += 0.05
                epoch, until = st.gap_epoch, st.backfill_until
                # Everything buffered before the gap is written first, so the cursor is right.
                self._flush_feed_now(st)
                try:
                    self.stats.backfills += 1
                    await self._in_writer(trades_backfill, feed_id=st.feed.pk, until_id=until)
                except SourceDeferred as exc:
                    await self._sleep_or_stop(exc.wait_s)
                    continue
                except (SourceRequestFailed, ccxt.BaseError) as exc:
                    attempt = await self._failed(st, exc, "backfill", attempt)
                    continue
                except Exception:
                    logger.exception("%s %s: backfill failed", st.feed.source.slug, st.spec.symbol)
                    attempt += 1
                    await self._retry_sleep(attempt)
                    continue
                attempt = 0
                if st.gap_epoch == epoch:
                    # Gap closed: stream batches written meanwhile held the cursor back; move it
                    # over them (queued after them in the writer). Batches from here on move it
                    # themselves; this is settled before the await, so a flush during it cannot
                    # slip a held batch past the advance.
                    held, st.held_max_id = st.held_max_id, None
                    st.backfill_pending = False
                    st.batch.advance_cursor = True
                    if held is not None:
                        await self._in_writer(feed_cursor_advance, feed_id=st.feed.pk, trade_id=held)
            st.backfill_running = False

        task = asyncio.get_running_loop().create_task(run())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _sleep_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.05, seconds)):
                await self.stopping.wait()

    async def _book_loop(self, st: FeedState, ex) -> None:
        attempt = 0
        while not self.stopping.is_set():
            try:
                book = await asyncio.wait_for(st.adapter.watch_order_book(ex, st.spec), timeout=self.stale_s)
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                # No update for stale_s: the book is stale. Nothing is sampled from a frozen book,
                # and the Sources page shows it from last_book_at.
                logger.warning("%s %s: no book update for %.0f s (stale)", st.feed.source.slug, st.spec.symbol,
                               self.stale_s)
                continue
            except ccxt.InvalidNonce as exc:  # ChecksumError included: ccxt dropped the book and resyncs
                st.batch.sequence_gaps += 1
                self.stats.book_resyncs += 1
                logger.warning("%s %s: book out of sequence, resyncing: %s", st.feed.source.slug, st.spec.symbol,
                               str(exc)[:200])
                continue
            except Exception as exc:  # noqa: BLE001 - ccxt.NetworkError, or a bad message: retried
                attempt = await self._failed(st, exc, "book", attempt)
                continue
            attempt = 0
            now = int(time.time() * 1000)
            st.last_book_update_ms = now
            if now - st.last_book_sample_ms >= self.book_sample_ms:
                st.last_book_sample_ms = now
                # Copy the top levels now: ccxt mutates the book in place.
                st.batch.books.append({
                    "bids": [list(x[:2]) for x in book["bids"][:1000]],
                    "asks": [list(x[:2]) for x in book["asks"][:1000]],
                    "timestamp": book.get("timestamp") or now, "nonce": book.get("nonce"),
                })
                st.batch.last_received_ms = now

    async def _liquidation_loop(self, st: FeedState, ex) -> None:
        attempt = 0
        while not self.stopping.is_set():
            try:
                liqs = await st.adapter.watch_liquidations(ex, st.spec)
            except asyncio.CancelledError:
                raise
            except ccxt.NotSupported:
                return
            except Exception as exc:  # noqa: BLE001
                attempt = await self._failed(st, exc, "liquidations", attempt)
                continue
            attempt = 0
            st.batch.liquidations.extend(liqs)

    # ------------------------------------------------------------------ flushing

    def _flush_feed_now(self, st: FeedState) -> None:
        """Queue this feed's buffered batch on the writer thread right away (keeps ordering)."""
        batch = st.batch
        st.new_batch()
        if batch:
            self._submit([(st, batch)], max(0.001, time.monotonic() - self._window_start))

    def _submit(self, pending: list[tuple[FeedState, FeedBatch]], window: float) -> asyncio.Task:
        """Hand batches to the writer thread now (FIFO with backfills), finish up in a task."""
        for st, batch in pending:
            if not batch.advance_cursor and batch.trades:
                ids = [i for i in map(st.adapter.trade_id, batch.trades) if i is not None]
                if ids:
                    st.held_max_id = max(st.held_max_id or 0, max(ids))
        items = [(st.feed.pk, st.contract_size, batch_slim(batch)) for st, batch in pending]
        future = self._in_writer(batches_write, items, window=window, publish=self.publish,
                                 record_lag=self.record_lag, token=self._token)
        task = asyncio.ensure_future(self._after_write(future, pending))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return task

    async def _flusher(self) -> None:
        # Ends on stop, not on cancellation alone: Python 3.11's asyncio.wait_for loses a cancel that
        # lands as its inner wait completes, and this loop then ran forever (the stop hung).
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.batch_ms / 1000):
                    await self._wake.wait()
            self._wake.clear()
            if self._inflight is not None and not self._inflight.done():
                # The writer is busy: keep accumulating into a bigger batch, written as soon as it is free.
                await asyncio.wait({self._inflight})
            await self._flush()

    async def _flush(self) -> None:
        rejected_drain(exchanges=self._exchanges, feeds=self._feeds.values())
        pending = []
        for st in self._feeds.values():
            if st.batch:
                pending.append((st, st.batch))
                st.new_batch()
        self._pending_messages = 0
        window = max(0.001, time.monotonic() - self._window_start)
        self._window_start = time.monotonic()
        if pending:
            self._inflight = self._submit(pending, window)

    async def _after_write(self, future, pending: list[tuple[FeedState, FeedBatch]]) -> None:
        try:
            results, lags = await future
        except Exception:
            logger.exception("collector: writing a batch failed; its trades come back through backfill")
            for st, _ in pending:
                if not st.backfill_pending:
                    st.backfill_pending = True
                    st.backfill_until = None
            return
        self.stats.flushes += 1
        self.stats.stored += sum(r.inserted for r in results)
        self.stats.lags_ms.extend(lags)
        if self.on_flush:
            self.on_flush(pending, results)


async def _settled(aws: list, what: str, timeout: float = 30.0) -> None:
    """Wait for `aws` at stop, but never forever: log what is still pending."""
    if not aws:
        return
    _, pending = await asyncio.wait([asyncio.ensure_future(a) for a in aws], timeout=timeout)
    for p in pending:
        logger.error("collector: %s did not finish %.0f s after stop: %r", what, timeout, p)  # names its line


def collector_run(**kwargs) -> Stats:
    collector = Collector(**kwargs)
    return asyncio.run(collector.run())
