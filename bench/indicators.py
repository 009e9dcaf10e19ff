"""SPI indicator benchmark: `python -m bench.indicators [trades] [book_updates]`.

Builds 1,000,000 trades and 1,000,000 best bid/ask updates by looping the real Binance spot
BTCUSDT recording (2024-08-08 and -09 files, ~11 min; each loop shifted by the recording's span),
then times, on plain arrays (no database):

- all components + SPI in one batch, on 1m bars (the dashboard's interval) and on 1s bars;
- one incremental update with the next 1-second batch of events, after the stream holds the
  whole history (median and worst of 200 consecutive seconds);

with baselines measured in the same run: a plain-Python loop of the event-level work (flow sums,
large-trade threshold, VPIN buckets, OFI) on a 1/10 slice scaled x10 plus the robust z-scores
with statistics.median on 1/10 of the bars scaled x10 (the rolling regressions and medians are
left out, so the loop figure is a lower bound); pandas groupby for the per-bar aggregates alone;
and a full recomputation over the trailing window (what a live update would cost without the
incremental state). Prints one JSON object.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from bisect import bisect_left, insort
from collections import deque

import numpy as np
import pandas as pd

from apps.pressure.indicators.incremental import SpiStream
from apps.pressure.indicators.pipeline import (
    BookSamples,
    Quotes,
    SpiConfig,
    Trades,
    compute_components,
    lookback,
    spi_from_components,
)
from tests.unit.indicators.feeds import book_tickers, trades_of

FILES = ("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz")
TARGET_FULL_S = 2.0
TARGET_INCREMENTAL_MS = 20.0


def looped(n_trades: int, n_quotes: int) -> tuple[Trades, Quotes, int]:
    """The recording repeated with times shifted by its span until each stream has its count."""
    parts = [trades_of(f) for f in FILES]
    t = np.concatenate([p.time_ms for p in parts])
    price = np.concatenate([p.price for p in parts])
    qty = np.concatenate([p.qty for p in parts])
    sell = np.concatenate([p.taker_sell for p in parts])
    rows = [r for f in FILES for r in book_tickers(f)]
    qt = np.array([r[0] for r in rows], dtype=np.int64)
    qcols = [np.array([r[k] for r in rows]) for k in range(1, 5)]
    span = int(max(t[-1], qt[-1]) - min(t[0], qt[0])) + 1_000

    def tile(times: np.ndarray, n: int) -> np.ndarray:
        loops = -(-n // len(times))
        return (np.tile(times, loops) + np.repeat(np.arange(loops, dtype=np.int64) * span, len(times)))[:n]

    def rep(a: np.ndarray, n: int) -> np.ndarray:
        return np.tile(a, -(-n // len(a)))[:n]

    trades = Trades(tile(t, n_trades), rep(price, n_trades), rep(qty, n_trades), rep(sell, n_trades))
    quotes = Quotes(tile(qt, n_quotes), *(rep(c, n_quotes) for c in qcols))
    return trades, quotes, span


def book_of(q: Quotes) -> BookSamples:
    """Top of book as the one depth band (quote currency), like a bookTicker-only feed."""
    return BookSamples(q.time_ms, q.bid_px, q.ask_px, q.bid_px * q.bid_qty, q.ask_px * q.ask_qty, ("l1",))


def full_run(trades: Trades, quotes: Quotes, book: BookSamples, config: SpiConfig) -> tuple[float, int, float]:
    start = time.perf_counter()
    components = compute_components(trades=trades, quotes=quotes, book=book, config=config)
    result = spi_from_components(components, config=config)
    elapsed = time.perf_counter() - start
    return elapsed, len(result), float(result.spi.notna().mean())


def python_loop_events(trades: Trades, quotes: Quotes, interval_ms: int, config: SpiConfig) -> float:
    """Baseline: the event-level work (flow sums, large-trade threshold, VPIN buckets, OFI) as loops."""
    t, p, q, s = (a.tolist() for a in (trades.time_ms, trades.price, trades.qty, trades.taker_sell))
    start = time.perf_counter()
    bars: dict[int, list] = {}
    ordered, fifo = [], deque()
    v = float(np.sum(trades.qty)) / 1_000
    filled = buy = 0.0
    imbalances = []
    for i in range(len(t)):
        bar = bars.setdefault(t[i] - t[i] % interval_ms, [0.0, 0.0, 0, 0, 0.0, 0.0, 0.0, 0.0])
        k = 1 if s[i] else 0
        bar[k] += q[i]
        bar[2 + k] += 1
        bar[4] = p[i]
        if len(fifo) >= config.large_min_trades:
            h = config.large_quantile * (len(ordered) - 1)
            lo = int(h)
            thr = ordered[lo] + (ordered[min(lo + 1, len(ordered) - 1)] - ordered[lo]) * (h - lo)
            if q[i] >= thr:
                bar[5 + k] += q[i]
        insort(ordered, q[i])
        fifo.append(q[i])
        if len(fifo) > config.large_window:
            del ordered[bisect_left(ordered, fifo.popleft())]
        left = q[i]
        while left > 0:
            take = min(v - filled, left)
            filled += take
            buy += 0 if s[i] else take
            left -= take
            if filled >= v:
                imbalances.append(abs(2 * buy - v) / v)
                filled = buy = 0.0
    qt, pb, qb, pa, qa = (a.tolist() for a in (quotes.time_ms, quotes.bid_px, quotes.bid_qty, quotes.ask_px,
                                                quotes.ask_qty))
    ofi: dict[int, float] = {}
    for i in range(1, len(qt)):
        e = ((qb[i] if pb[i] >= pb[i - 1] else 0.0) - (qb[i - 1] if pb[i] <= pb[i - 1] else 0.0)
             - (qa[i] if pa[i] <= pa[i - 1] else 0.0) + (qa[i - 1] if pa[i] >= pa[i - 1] else 0.0))
        b = qt[i] - qt[i] % interval_ms
        ofi[b] = ofi.get(b, 0.0) + e
    return time.perf_counter() - start


def python_loop_robust_z(components: pd.DataFrame, window: int, min_periods: int, rows: int) -> float:
    """Baseline: trailing median/MAD z-scores with statistics.median, for ``rows`` bars of every column."""
    import statistics

    values = {c: components[c].tolist() for c in components.columns if components[c].notna().any()}
    start = time.perf_counter()
    for col in values.values():
        for i in range(len(col) - rows, len(col)):
            prior = [v for v in col[max(0, i - window): i] if v == v]
            if len(prior) >= min_periods:
                med = statistics.median(prior)
                mad = statistics.median([abs(v - med) for v in prior])
                _ = (col[i] - med) / (1.4826 * mad) if mad else 0.0
    return time.perf_counter() - start


def pandas_groupby_aggregates(trades: Trades, quotes: Quotes, interval_ms: int) -> float:
    """Baseline: the per-bar aggregates (flow sums, close, mid, quote counts) with pandas groupby."""
    start = time.perf_counter()
    tf = pd.DataFrame({"bar": trades.time_ms - trades.time_ms % interval_ms, "price": trades.price,
                       "sell": np.where(trades.taker_sell, trades.qty, 0.0),
                       "buy": np.where(trades.taker_sell, 0.0, trades.qty), "is_sell": trades.taker_sell})
    tf.groupby("bar").agg(buy=("buy", "sum"), sell=("sell", "sum"), sells=("is_sell", "sum"),
                          trades=("price", "size"), close=("price", "last"))
    qf = pd.DataFrame({"bar": quotes.time_ms - quotes.time_ms % interval_ms,
                       "mid": (quotes.bid_px + quotes.ask_px) / 2})
    qf.groupby("bar").agg(mid=("mid", "last"), updates=("mid", "size"))
    return time.perf_counter() - start


def incremental_run(trades: Trades, quotes: Quotes, book: BookSamples, config: SpiConfig, seconds: int = 200
                    ) -> dict:
    """History up to a cut, then one update per following second of events."""
    cut = int(quotes.time_ms[len(quotes) * 7 // 10])  # inside the span of both streams
    cut -= cut % 1_000

    def part(stream, lo, hi):
        a, b = np.searchsorted(stream.time_ms, [lo, hi])
        if isinstance(stream, BookSamples):
            return BookSamples(stream.time_ms[a:b], stream.bid[a:b], stream.ask[a:b], stream.bid_depth[a:b],
                               stream.ask_depth[a:b], stream.bands)
        return type(stream)(*(getattr(stream, f)[a:b] for f in stream.__dataclass_fields__))

    stream = SpiStream(config)
    start = time.perf_counter()
    stream.update(trades=part(trades, 0, cut), quotes=part(quotes, 0, cut), book=part(book, 0, cut))
    warm_s = time.perf_counter() - start
    times, events = [], []
    for k in range(seconds):
        lo = cut + k * 1_000
        batch = {"trades": part(trades, lo, lo + 1_000), "quotes": part(quotes, lo, lo + 1_000),
                 "book": part(book, lo, lo + 1_000)}
        start = time.perf_counter()
        stream.update(**batch)
        times.append(time.perf_counter() - start)
        events.append(len(batch["trades"]) + len(batch["quotes"]))
    # Baseline: recompute every component and the SPI over the trailing state's span instead.
    need = (config.window + lookback(config) + 1) * config.interval_ms
    lo = cut + seconds * 1_000 - need
    start = time.perf_counter()
    tail = {"trades": part(trades, lo, cut + seconds * 1_000), "quotes": part(quotes, lo, cut + seconds * 1_000),
            "book": part(book, lo, cut + seconds * 1_000)}
    spi_from_components(compute_components(**tail, config=config), config=config, last=1)
    recompute_s = time.perf_counter() - start
    ms = np.array(times) * 1_000
    return {"history_s": round(warm_s, 3), "update_ms_median": round(float(np.median(ms)), 2),
            "update_ms_p95": round(float(np.percentile(ms, 95)), 2), "update_ms_max": round(float(ms.max()), 2),
            "events_per_batch_median": int(np.median(events)),
            "recompute_window_ms": round(recompute_s * 1_000, 2),
            "recompute_vs_incremental": round(recompute_s * 1_000 / float(np.median(ms)), 1)}


def main() -> None:
    n_trades = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    n_quotes = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    trades, quotes, span = looped(n_trades, n_quotes)
    book = book_of(quotes)
    out: dict = {"trades": n_trades, "book_updates": n_quotes, "loop_span_s": span / 1_000,
                 "trades_span_h": round(float(trades.time_ms[-1] - trades.time_ms[0]) / 3.6e6, 2),
                 "book_span_h": round(float(quotes.time_ms[-1] - quotes.time_ms[0]) / 3.6e6, 2),
                 "python": platform.python_version(), "machine": platform.machine()}
    slice_t = Trades(*(a[: n_trades // 10] for a in (trades.time_ms, trades.price, trades.qty, trades.taker_sell)))
    slice_q = Quotes(*(a[: n_quotes // 10] for a in (quotes.time_ms, quotes.bid_px, quotes.bid_qty, quotes.ask_px,
                                                      quotes.ask_qty)))
    for label, interval in (("1m", 60_000), ("1s", 1_000)):
        config = SpiConfig(interval_ms=interval)
        full_run(slice_t, slice_q, book_of(slice_q), config)  # warm-up (imports, caches)
        runs = [full_run(trades, quotes, book, config) for _ in range(3)]
        best = min(r[0] for r in runs)
        loop_s = python_loop_events(slice_t, slice_q, interval, config) * 10
        components = compute_components(trades=trades, quotes=quotes, book=book, config=config)
        rows = max(len(components) // 10, 1)
        loop_z_s = python_loop_robust_z(components, config.window, config.min_periods, rows) * len(components) / rows
        loop_s += loop_z_s
        groupby_s = pandas_groupby_aggregates(trades, quotes, interval)
        out[label] = {
            "bars": runs[0][1], "spi_defined_share": round(runs[0][2], 3),
            "all_components_and_spi_s": round(best, 3),
            "target_s": TARGET_FULL_S, "target_met": best < TARGET_FULL_S,
            "baseline_python_loop_s": round(loop_s, 3),
            "of_which_robust_z_loop_s": round(loop_z_s, 3),
            "python_loop_vs_full": round(loop_s / best, 1),
            "baseline_pandas_groupby_aggregates_s": round(groupby_s, 3),
            "groupby_aggregates_share_of_full": round(groupby_s / best, 2),
        }
    for label, interval in (("incremental_1m", 60_000), ("incremental_1s", 1_000)):
        inc = incremental_run(trades, quotes, book, SpiConfig(interval_ms=interval))
        inc["target_ms"] = TARGET_INCREMENTAL_MS
        inc["target_met"] = inc["update_ms_median"] < TARGET_INCREMENTAL_MS
        out[label] = inc
    print(json.dumps(out))


if __name__ == "__main__":
    main()
