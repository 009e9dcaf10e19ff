"""1m bars from stored trades and book samples: exact integer trade math, book means, order flow imbalance,
large-trade sums; whole minutes recomputed, or grown by a batch of newer trades."""

from __future__ import annotations

import bisect
import io
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, transaction

from apps.markets.models import BookSample, Instrument, Trade
from apps.markets.validation import TradeRow
from apps.pressure import bars as barmath
from apps.pressure.indicators import ofi, orderbook, orderflow

logger = logging.getLogger(__name__)

BAR_FIELDS = [
    "open", "high", "low", "close", "vwap", "trades", "taker_buy_base", "taker_sell_base", "taker_buy_quote",
    "taker_sell_quote", "delta_base", "taker_sell_ratio", "spread_bps", "imbalance_0_1pct", "imbalance_0_5pct",
    "imbalance_1pct", "imbalance_2pct", "book_samples", "buy_trades", "sell_trades", "large_trade_sell_share",
    "large_trade_base", "large_trade_sell_base", "ofi", "bid_depth_0_5pct",
]
_TRADE_SUMS = ("taker_buy_base", "taker_sell_base", "taker_buy_quote", "taker_sell_quote")
# What a 1m bar adds up over its trades: a batch of later trades merges into a stored bar by addition.
_ADDITIVE = ("trades", *_TRADE_SUMS, "buy_trades", "sell_trades", "large_trade_base", "large_trade_sell_base")
_DEPTH_COLUMNS = [f"{side}_depth_{band}" for band in barmath.BAND_NAMES for side in ("bid", "ask")]


def trade_arrays(*, instrument: Instrument, start_ms: int, end_ms: int) -> tuple[np.ndarray, ...]:
    """Trades in [start, end) as exact integer arrays, sorted by time then trade id."""
    pd_, qd = instrument.price_decimals, instrument.qty_decimals
    table = Trade._meta.db_table
    where = f"FROM {table} WHERE instrument_id = %s AND time_ms >= %s AND time_ms < %s ORDER BY time_ms, trade_id"
    params = [instrument.pk, start_ms, end_ms]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY out as text and parse in C: no Python object per row.
            sql = (f"COPY (SELECT time_ms, round(price * 1e{pd_})::bigint, round(qty * 1e{qd})::bigint,"
                   f" taker_sell::int {where}) TO STDOUT")
            buffer = io.BytesIO()
            with cursor.cursor.copy(cursor.cursor.mogrify(sql, params)) as copy:
                for block in copy:
                    buffer.write(block)
            buffer.seek(0)
            flat = np.loadtxt(buffer, dtype=np.int64, delimiter="\t", ndmin=2) if buffer.getbuffer().nbytes else None
        else:
            # Trades hold at most 15 significant digits, so the float product rounds back exactly.
            cursor.execute(
                f"SELECT time_ms, CAST(round(price * 1e{pd_}) AS INTEGER), CAST(round(qty * 1e{qd}) AS INTEGER),"
                f" taker_sell {where}", params,
            )
            flat = np.fromiter(itertools.chain.from_iterable(cursor.cursor), dtype=np.int64).reshape(-1, 4)
    if flat is None or not len(flat):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, np.zeros(0, dtype=bool)
    return flat[:, 0], flat[:, 1], flat[:, 2], flat[:, 3].astype(bool)


# Book samples come about every second, so the one just before a range is nearly always within this of it.
_BOOK_LOOKBACK_MS = 5_000


def book_arrays(*, instrument: Instrument, start_ms: int, end_ms: int) -> dict[str, np.ndarray]:
    """Book samples in [start, end) plus the one just before (the state OFI starts from)."""
    columns = ["time_ms", "bid_price", "bid_qty", "ask_price", "ask_qty", *_DEPTH_COLUMNS]
    samples = BookSample.objects.filter(instrument=instrument)
    # One read from a little before start; a second one for the sample before only after a longer gap.
    rows = list(samples.filter(time_ms__gte=start_ms - _BOOK_LOOKBACK_MS, time_ms__lt=end_ms).order_by("time_ms")
                .values_list(*columns))
    first = bisect.bisect_left(rows, start_ms, key=lambda row: row[0])
    if first:
        before = rows[first - 1][1:5]
    else:
        before = samples.filter(time_ms__lt=start_ms).order_by("-time_ms").values_list(*columns[1:5]).first()
    rows = rows[first:]
    arr = np.array(rows, dtype=np.float64).reshape(-1, len(columns))
    depth = arr[:, 5:]
    return {
        "time_ms": arr[:, 0].astype(np.int64), "bid": arr[:, 1], "bid_qty": arr[:, 2], "ask": arr[:, 3],
        "ask_qty": arr[:, 4], "bid_depth": depth[:, 0::2], "ask_depth": depth[:, 1::2],
        "previous": tuple(float(v) for v in before) if before else None,
    }


def _qty_before(*, instrument: Instrument, start_ms: int, count: int, trade_id: int | None = None) -> np.ndarray:
    """Sizes of the `count` trades before start (oldest first): history for the large-trade quantile.

    With `trade_id`, "before" is by (time, trade id): trades of the same millisecond with a lower id count.
    """
    cast = "qty::float8" if connection.vendor == "postgresql" else "CAST(qty AS REAL)"
    before, params = "time_ms < %s", [instrument.pk, start_ms, count]
    if trade_id is not None:
        before, params = "(time_ms < %s OR (time_ms = %s AND trade_id < %s))", [
            instrument.pk, start_ms, start_ms, trade_id, count]
    with connection.cursor() as cursor:
        # Floats straight from the database: a Decimal per row would cost more than the query.
        cursor.execute(
            f"SELECT {cast} FROM {Trade._meta.db_table} WHERE instrument_id = %s AND {before}"
            " ORDER BY time_ms DESC, trade_id DESC LIMIT %s", params,
        )
        qty = np.fromiter((row[0] for row in cursor.fetchall()), dtype=np.float64)
    # The float nearest each stored decimal, as the batch's own sizes are computed (units / 10**decimals):
    # SQLite's text-to-real conversion is off by an ulp now and then.
    unit = 10.0**instrument.qty_decimals
    return np.rint(qty[::-1] * unit) / unit


def trade_tail(*, instrument: Instrument) -> tuple[int, int] | None:
    """(time, trade id) of the instrument's latest stored trade."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT time_ms, trade_id FROM {Trade._meta.db_table} WHERE instrument_id = %s"
            " ORDER BY time_ms DESC, trade_id DESC LIMIT 1", [instrument.pk],
        )
        row = cursor.fetchone()
    return (int(row[0]), int(row[1])) if row else None


@dataclass(frozen=True)
class AppendedTrades:
    """A batch's trades when all of them were new and later than every trade stored before:
    the bars they touch can then grow by these trades alone, without re-reading the minute."""

    time_ms: np.ndarray
    price: np.ndarray  # units of the instrument's price decimals
    qty: np.ndarray  # units of its qty decimals
    sell: np.ndarray
    first_id: int | None
    tail_before: tuple[int, int] | None = None  # (time, trade id) of the newest trade stored before the batch
    tail_after: tuple[int, int] | None = None  # ... and of the batch's newest trade


def appended_trades(
    *, instrument: Instrument, rows: Sequence[TradeRow], inserted: int, tail: tuple[int, int] | None,
) -> AppendedTrades | None:
    """The batch as AppendedTrades, or None when it overlaps stored history (duplicates, late trades).
    A batch of book samples only appends no trades."""
    if inserted != len(rows):
        return None
    ordered = sorted(rows, key=lambda r: (r.time_ms, r.trade_id))
    first = ordered[0] if ordered else None
    if first is not None and tail is not None and (first.time_ms, first.trade_id) <= tail:
        return None
    return AppendedTrades(
        time_ms=np.fromiter((r.time_ms for r in ordered), dtype=np.int64, count=len(ordered)),
        price=barmath.to_units([r.price for r in ordered], instrument.price_decimals),
        qty=barmath.to_units([r.qty for r in ordered], instrument.qty_decimals),
        sell=np.fromiter((r.taker_sell for r in ordered), dtype=bool, count=len(ordered)),
        first_id=first.trade_id if first is not None else None,
        tail_before=tail, tail_after=(ordered[-1].time_ms, ordered[-1].trade_id) if ordered else tail,
    )


def _empty_bar(bucket: int, qd: int) -> dict:
    zero = barmath.from_units(0, qd)
    return {
        "bucket_ms": bucket, "open": None, "high": None, "low": None, "close": None, "trades": 0,
        "taker_buy_base": zero, "taker_sell_base": zero, "taker_buy_quote": zero, "taker_sell_quote": zero,
        "buy_trades": 0, "sell_trades": 0, "large_trade_base": 0.0, "large_trade_sell_base": 0.0,
    }


def _trade_fields(tb: barmath.TradeBars, i: int, *, price_decimals: int, qty_decimals: int) -> dict:
    pd_, qd = price_decimals, qty_decimals
    return {
        "open": barmath.from_units(tb.open[i], pd_),
        "high": barmath.from_units(tb.high[i], pd_),
        "low": barmath.from_units(tb.low[i], pd_),
        "close": barmath.from_units(tb.close[i], pd_),
        "trades": int(tb.trades[i]),
        "taker_buy_base": barmath.from_units(tb.buy_base[i], qd),
        "taker_sell_base": barmath.from_units(tb.sell_base[i], qd),
        "taker_buy_quote": barmath.from_units(tb.buy_quote[i], pd_ + qd),
        "taker_sell_quote": barmath.from_units(tb.sell_quote[i], pd_ + qd),
    }


# The book means a 1m bar keeps (None for a minute without samples).
_BOOK_MEANS = ("spread_bps", "bid_depth_0_5pct", *(f"imbalance_{band}" for band in barmath.BAND_NAMES))


def _book_fields(bars: dict[int, dict], book: dict, *, qty_decimals: int) -> None:
    """Set the quote-side fields (spread, imbalances, depth, samples, OFI) of every bar in `bars`, and
    add bars for minutes with book samples only. `book` holds all samples of those minutes."""
    ofi_sums = _ofi_by_minute(book)
    if len(book["time_ms"]):
        grid, means = orderbook.book_sample_bar_arrays(
            book["time_ms"], book["bid"], book["ask"], book["bid_depth"], book["ask_depth"],
            interval_ms=barmath.INTERVAL_MS["1m"], bands=barmath.BAND_NAMES)
        for i in np.flatnonzero(means["samples"] > 0).tolist():
            bucket = int(grid[i])
            bar = bars.setdefault(bucket, _empty_bar(bucket, qty_decimals))
            bar.update({name: _finite_or_none(means[name][i]) for name in _BOOK_MEANS})
            bar["book_samples"] = int(means["samples"][i])
    for bucket, bar in bars.items():
        for name in _BOOK_MEANS:
            bar.setdefault(name, None)
        bar.setdefault("book_samples", 0)
        bar["ofi"] = _finite_or_none(ofi_sums.get(bucket, np.nan))


def _finish_minute(bar: dict) -> dict:
    large = bar["large_trade_base"]
    bar["large_trade_sell_share"] = bar["large_trade_sell_base"] / large if large > 0 else None
    return barmath.finish_bar(bar)


def minute_bars_compute(*, instrument: Instrument, start_ms: int, end_ms: int) -> list[dict]:
    """1m bars for the minutes in [start, end) from stored trades and book samples."""
    interval = barmath.INTERVAL_MS["1m"]
    t, price, qty, sell = trade_arrays(instrument=instrument, start_ms=start_ms, end_ms=end_ms)
    tb = barmath.trade_bars(t, price, qty, sell, interval_ms=interval)
    pd_, qd = instrument.price_decimals, instrument.qty_decimals
    counts = _trade_counts(t, sell)
    large = _large_trade_sums(instrument=instrument, t=t, qty=qty / 10.0**qd, sell=sell, start_ms=start_ms)
    bars: dict[int, dict] = {}
    for i, bucket in enumerate(tb.bucket_ms.tolist()):
        bars[bucket] = {**_empty_bar(bucket, qd), **_trade_fields(tb, i, price_decimals=pd_, qty_decimals=qd),
                        **counts.get(bucket, {}), **large.get(bucket, {})}
    _book_fields(bars, book_arrays(instrument=instrument, start_ms=start_ms, end_ms=end_ms), qty_decimals=qd)
    return [_finish_minute(bars[bucket]) for bucket in sorted(bars)]


def minute_bars_extend(
    *, instrument: Instrument, appended: AppendedTrades, start_ms: int, end_ms: int, stored: list[dict],
) -> list[dict] | None:
    """The 1m bars of [start, end) grown by `appended`: `stored` (the minutes' trade-built bars as read in this
    transaction, dicts with bucket_ms and BAR_FIELDS; a kline bar of a minute is replaced, never grown by
    trades) + the batch's own trade bars.

    Equal to minute_bars_compute over the same minutes (the quote side is recomputed: a minute holds
    a few hundred book samples but up to a million trades). None when a stored bar lacks the sums
    the merge needs (written before they existed); the caller then recomputes.
    """
    minute = barmath.INTERVAL_MS["1m"]
    pd_, qd = instrument.price_decimals, instrument.qty_decimals
    t, sell = appended.time_ms, appended.sell
    tb = barmath.trade_bars(t, appended.price, appended.qty, sell, interval_ms=minute)
    counts = _trade_counts(t, sell)
    large = _large_trade_sums(instrument=instrument, t=t, qty=appended.qty / 10.0**qd, sell=sell,
                              start_ms=int(t[0]) if len(t) else start_ms, first_id=appended.first_id,
                              appended=appended)
    bars: dict[int, dict] = {}
    for row in stored:
        if row["trades"] and row["large_trade_sell_share"] is not None and not row["large_trade_base"]:
            return None
        bars[row["bucket_ms"]] = {"bucket_ms": row["bucket_ms"],
                                  **{name: row[name] for name in ("open", "high", "low", "close", *_ADDITIVE)}}
    touched = set()
    for i, bucket in enumerate(tb.bucket_ms.tolist()):
        touched.add(bucket)
        new = {**_trade_fields(tb, i, price_decimals=pd_, qty_decimals=qd), **counts.get(bucket, {}),
               **large.get(bucket, {})}
        bar = bars.get(bucket)
        if bar is None or not bar["trades"]:
            bars[bucket] = {**(bar or _empty_bar(bucket, qd)), **new}
            continue
        # Every appended trade is later than every stored one: the open stays, the close moves.
        bar["high"], bar["low"], bar["close"] = max(bar["high"], new["high"]), min(bar["low"], new["low"]), new["close"]
        for name in _ADDITIVE:
            bar[name] += new.get(name, 0)
    book = book_arrays(instrument=instrument, start_ms=start_ms, end_ms=end_ms)
    book_minutes = set((book["time_ms"] - book["time_ms"] % minute).tolist())
    # Only minutes with new trades or book samples change; the others in range are left as stored.
    bars = {b: bar for b, bar in bars.items() if b in touched or b in book_minutes}
    _book_fields(bars, book, qty_decimals=qd)
    return [_finish_minute(bars[bucket]) for bucket in sorted(bars)]


def _trade_counts(t: np.ndarray, sell: np.ndarray) -> dict[int, dict[str, int]]:
    """Per minute, the number of taker buys and taker sells."""
    minute = barmath.INTERVAL_MS["1m"]
    bucket = t - t % minute
    out: dict[int, dict[str, int]] = {}
    for name, mask in (("buy_trades", ~sell), ("sell_trades", sell)):
        buckets, counts = np.unique(bucket[mask], return_counts=True)
        for b, n in zip(buckets.tolist(), counts.tolist(), strict=True):
            out.setdefault(b, {})[name] = n
    return out


# Per instrument, the sizes of its newest trades as this process last saw them, with what they were read
# at: (trades_revision, newest (time, trade id)). A live batch's large-trade threshold needs the `window`
# trades before it, and reading them back was most of a batch's database time. The entry is used only
# while the instrument's revision (changed by late trades and pruning) and newest trade are the same.
_recent_sizes: dict[int, tuple[tuple, np.ndarray]] = {}


def _sizes_before(*, instrument: Instrument, start_ms: int, count: int, first_id: int | None,
                  appended: AppendedTrades | None) -> np.ndarray:
    revision = getattr(instrument, "trades_revision", None)
    if appended is not None and revision is not None and appended.tail_before is not None:
        cached = _recent_sizes.get(instrument.pk)
        if cached is not None and cached[0] == (revision, appended.tail_before):
            return cached[1]
    return _qty_before(instrument=instrument, start_ms=start_ms, count=count, trade_id=first_id)


def _sizes_remember(*, instrument: Instrument, appended: AppendedTrades, sizes: np.ndarray) -> None:
    """After the batch commits: its trades are the newest, so the window moves on by them."""
    revision = getattr(instrument, "trades_revision", None)
    if revision is None or appended.tail_after is None:
        return
    key = (revision, appended.tail_after)
    transaction.on_commit(lambda: _recent_sizes.__setitem__(instrument.pk, (key, sizes)))


def _large_trade_sums(
    *, instrument: Instrument, t: np.ndarray, qty: np.ndarray, sell: np.ndarray, start_ms: int,
    first_id: int | None = None, appended: AppendedTrades | None = None,
) -> dict[int, dict[str, float]]:
    """Per minute, the base volume of large trades and of large taker sells (SPI input).

    A trade is large when its size reaches the trailing quantile of the trades before it, so the
    history before the first trade is read from the database (or, for appended trades, this process's
    copy of it).
    """
    if not len(t):
        return {}
    cfg = settings.SPI_LARGE_TRADES
    history = _sizes_before(instrument=instrument, start_ms=start_ms, count=cfg["window"], first_id=first_id,
                            appended=appended)
    threshold = orderflow.large_trade_threshold(qty, quantile=cfg["quantile"], window=cfg["window"],
                                                min_trades=cfg["min_trades"], history=history)
    if appended is not None:
        _sizes_remember(instrument=instrument, appended=appended,
                        sizes=np.concatenate((history, qty))[-cfg["window"]:])
    large = np.nan_to_num(threshold, nan=np.inf) <= qty
    buckets, first = np.unique(t - t % barmath.INTERVAL_MS["1m"], return_index=True)  # t is sorted
    sums = {name: np.add.reduceat(np.where(mask, qty, 0.0), first).tolist()
            for name, mask in (("large_trade_sell_base", large & sell), ("large_trade_base", large))}
    return {bucket: {name: values[i] for name, values in sums.items()} for i, bucket in enumerate(buckets.tolist())}


def _ofi_by_minute(book: dict) -> dict[int, float]:
    if not len(book["time_ms"]):
        return {}
    events = ofi.ofi_events(book["bid"], book["bid_qty"], book["ask"], book["ask_qty"], previous=book["previous"])
    bucket = book["time_ms"] - book["time_ms"] % barmath.INTERVAL_MS["1m"]
    return pd.Series(events).groupby(bucket).sum().to_dict()


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


