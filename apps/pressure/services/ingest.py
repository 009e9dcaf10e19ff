"""Writes of selling-pressure bars, and the one ingestion entry point every source uses."""

from __future__ import annotations

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
from apps.markets.services import (
    TradeStoreResult,
    book_samples_store,
    instrument_lock,
    source_status_record,
    trades_store,
)
from apps.markets.validation import TradeRow, Validated, trades_validate
from apps.pressure import bars as barmath
from apps.pressure.indicators import ofi, orderbook, orderflow
from apps.pressure.models import PressureBar
from apps.pressure.selectors import bars_version_bump_on_commit
from apps.pressure.services.forecast import drop_risk_predict
from apps.pressure.services.index import bars_finalize, spi_refresh
from apps.pressure.signals import bars_changed, bars_finalized
from pressureweb.lib.times import dt_to_ms as _dt_to_ms
from pressureweb.lib.times import ms_to_dt as _ms_to_dt
from pressureweb.lib.times import now_ms

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


def book_arrays(*, instrument: Instrument, start_ms: int, end_ms: int) -> dict[str, np.ndarray]:
    """Book samples in [start, end) plus the one just before (the state OFI starts from)."""
    columns = ["time_ms", "bid_price", "bid_qty", "ask_price", "ask_qty", *_DEPTH_COLUMNS]
    samples = BookSample.objects.filter(instrument=instrument)
    rows = list(samples.filter(time_ms__gte=start_ms, time_ms__lt=end_ms).order_by("time_ms").values_list(*columns))
    before = samples.filter(time_ms__lt=start_ms).order_by("-time_ms").values_list(*columns[1:5]).first()
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
    return qty[::-1]


def _trade_tail(*, instrument: Instrument) -> tuple[int, int] | None:
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


def _book_fields(bars: dict[int, dict], book: dict, *, qty_decimals: int) -> None:
    """Set the quote-side fields (spread, imbalances, depth, samples, OFI) of every bar in `bars`, and
    add bars for minutes with book samples only. `book` holds all samples of those minutes."""
    minute = barmath.INTERVAL_MS["1m"]
    means = _book_means(book, interval_ms=minute)
    ofi_sums = _ofi_by_minute(book)
    for bucket, row in means.iterrows():
        bar = bars.setdefault(bucket, _empty_bar(bucket, qty_decimals))
        bar["spread_bps"] = _finite_or_none(row["spread_bps"])
        for band in barmath.BAND_NAMES:
            bar[f"imbalance_{band}"] = _finite_or_none(row[f"imbalance_{band}"])
        bar["bid_depth_0_5pct"] = _finite_or_none(row["bid_depth_0_5pct"])
        bar["book_samples"] = int(row["samples"])
    for bucket, bar in bars.items():
        bar.setdefault("spread_bps", None)
        bar.setdefault("bid_depth_0_5pct", None)
        bar.setdefault("book_samples", 0)
        for band in barmath.BAND_NAMES:
            bar.setdefault(f"imbalance_{band}", None)
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
    *, instrument: Instrument, appended: AppendedTrades, start_ms: int, end_ms: int,
) -> list[dict] | None:
    """The 1m bars of [start, end) grown by `appended`: stored bar + the batch's own trade bars.

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
                              start_ms=int(t[0]) if len(t) else start_ms, first_id=appended.first_id)
    stored = PressureBar.objects.filter(  # a kline bar of the minute is replaced, never grown by trades
        instrument=instrument, interval="1m", source=PressureBar.Source.TRADES,
        bucket_start__gte=_ms_to_dt(start_ms), bucket_start__lt=_ms_to_dt(end_ms),
    ).values("bucket_start", "open", "high", "low", "close", "large_trade_sell_share", *_ADDITIVE)
    bars: dict[int, dict] = {}
    for row in stored:
        share = row.pop("large_trade_sell_share")
        if row["trades"] and share is not None and not row["large_trade_base"]:
            return None
        bucket = _dt_to_ms(row.pop("bucket_start"))
        bars[bucket] = {"bucket_ms": bucket, **row}
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


def _large_trade_sums(
    *, instrument: Instrument, t: np.ndarray, qty: np.ndarray, sell: np.ndarray, start_ms: int,
    first_id: int | None = None,
) -> dict[int, dict[str, float]]:
    """Per minute, the base volume of large trades and of large taker sells (SPI input).

    A trade is large when its size reaches the trailing quantile of the trades before it, so the
    history before the first trade is read from the database.
    """
    if not len(t):
        return {}
    cfg = settings.SPI_LARGE_TRADES
    history = _qty_before(instrument=instrument, start_ms=start_ms, count=cfg["window"], trade_id=first_id)
    threshold = orderflow.large_trade_threshold(qty, quantile=cfg["quantile"], window=cfg["window"],
                                                min_trades=cfg["min_trades"], history=history)
    large = np.nan_to_num(threshold, nan=np.inf) <= qty
    frame = pd.DataFrame({"bucket": t - t % barmath.INTERVAL_MS["1m"], "large_trade_sell_base": np.where(
        large & sell, qty, 0.0), "large_trade_base": np.where(large, qty, 0.0)}).groupby("bucket").sum()
    return frame.to_dict("index")


def _ofi_by_minute(book: dict) -> dict[int, float]:
    if not len(book["time_ms"]):
        return {}
    events = ofi.ofi_events(book["bid"], book["bid_qty"], book["ask"], book["ask_qty"], previous=book["previous"])
    bucket = book["time_ms"] - book["time_ms"] % barmath.INTERVAL_MS["1m"]
    return pd.Series(events).groupby(bucket).sum().to_dict()


def _book_means(book: dict, *, interval_ms: int) -> pd.DataFrame:
    """Mean spread, band imbalances and band depths of the minutes that have book samples."""
    if not len(book["time_ms"]):
        return pd.DataFrame()
    means = orderbook.book_sample_bars(book["time_ms"], book["bid"], book["ask"], book["bid_depth"],
                                       book["ask_depth"], interval_ms=interval_ms, bands=barmath.BAND_NAMES)
    return means[means["samples"] > 0]


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _bars_upsert(*, instrument: Instrument, interval: str, rows: list[dict]) -> list[PressureBar]:
    objs = [
        PressureBar(
            instrument=instrument, interval=interval, bucket_start=_ms_to_dt(row["bucket_ms"]),
            source=PressureBar.Source.TRADES, **{name: row[name] for name in BAR_FIELDS},
        )
        for row in rows
    ]
    if objs:
        # A bar built from trades replaces an imported kline bar of its bucket: the two never mix.
        PressureBar.objects.bulk_create(
            objs, update_conflicts=True, unique_fields=["instrument", "interval", "bucket_start"],
            update_fields=[*BAR_FIELDS, "source", "updated_at"],  # a trade-built bar replaces a kline bar
        )
        # Cached ranges of this instrument are stale from the moment this commits.
        bars_version_bump_on_commit(instrument.pk)
    return objs


# When each instrument's forming bar last got its provisional index, by event time (this process).
_provisional_at: dict[int, int] = {}


def _provisional_due(instrument_id: int, clock_ms: int) -> bool:
    """The forming bar's index is provisional: recomputed at most every SPI_PROVISIONAL_MS of the feed's clock
    (bars, prices and volumes still update on every batch; the final index is computed when the bar is final)."""
    last = _provisional_at.get(instrument_id)
    if last is not None and 0 <= clock_ms - last < settings.SPI_PROVISIONAL_MS:
        return False
    _provisional_at[instrument_id] = clock_ms
    return True


def _kline_buckets(*, instrument: Instrument, start_ms: int, end_ms: int) -> list[int]:
    """Pks of imported kline bars in [start, end): trade-built bars replace them, and a replaced bar is
    not final until the trades' own clock says so."""
    return list(PressureBar.objects.filter(instrument=instrument, source=PressureBar.Source.KLINES,
                                           bucket_start__gte=_ms_to_dt(start_ms), bucket_start__lt=_ms_to_dt(end_ms))
                .values_list("pk", flat=True))


def bars_refresh(
    *, instrument: Instrument, start_ms: int, end_ms: int, appended: AppendedTrades | None = None,
    clock_ms: int | None = None,
) -> dict[str, list[PressureBar]]:
    """Recompute every bar (1m, 5m, 1h) whose bucket overlaps [start_ms, end_ms].

    With `appended` (the batch's trades, all later than any stored one) the 1m bars grow by them
    instead of being recomputed from every trade of their minutes. The index is recomputed for the
    touched 1m bars (the forming one shows it provisionally) and for touched 5m and 1h bars that are
    final or due (a late trade); a forming coarse bar gets its index when it is made final.
    """
    minute = barmath.INTERVAL_MS["1m"]
    lo = start_ms - start_ms % minute
    hi = end_ms - end_ms % minute + minute
    rows = None
    if appended is not None:
        rows = minute_bars_extend(instrument=instrument, appended=appended, start_ms=lo, end_ms=hi)
    if rows is None:
        rows = minute_bars_compute(instrument=instrument, start_ms=lo, end_ms=hi)
    hour = barmath.INTERVAL_MS["1h"]
    replaced = _kline_buckets(instrument=instrument, start_ms=lo - lo % hour,
                              end_ms=(hi - 1) - (hi - 1) % hour + hour)
    changed = {"1m": _bars_upsert(instrument=instrument, interval="1m", rows=rows)}
    clock = clock_ms or now_ms()
    late = lo + minute + settings.BAR_FINAL_GRACE_MS <= clock  # a final (or due) minute changed
    if changed["1m"] and (late or _provisional_due(instrument.pk, clock)):
        # The SPI of the touched minutes, also set on the copies that bars_upsert returned.
        spi = spi_refresh(instrument=instrument, start_ms=lo, end_ms=hi - 1)
        for bar in changed["1m"]:
            for name, value in spi.get(_dt_to_ms(bar.bucket_start), {}).items():
                setattr(bar, name, value)
    # One read of the minutes of every touched hour serves the 5m and the 1h rollups.
    minutes = [
        {"bucket_ms": _dt_to_ms(bucket), **dict(zip(BAR_FIELDS, values, strict=True))}
        for bucket, *values in PressureBar.objects.filter(
            instrument=instrument, interval="1m", source=PressureBar.Source.TRADES,  # kline minutes stay out
            bucket_start__gte=_ms_to_dt(lo - lo % hour), bucket_start__lt=_ms_to_dt((hi - 1) - (hi - 1) % hour + hour),
        ).order_by("bucket_start").values_list("bucket_start", *BAR_FIELDS)
    ]
    for interval in ("5m", "1h"):
        size = barmath.INTERVAL_MS[interval]
        c_lo, c_hi = lo - lo % size, (hi - 1) - (hi - 1) % size + size
        rows = barmath.rollup([m for m in minutes if c_lo <= m["bucket_ms"] < c_hi], interval_ms=size)
        changed[interval] = _bars_upsert(instrument=instrument, interval=interval, rows=rows)
        settled = (clock_ms or now_ms()) - settings.BAR_FINAL_GRACE_MS - size
        late = [b for b in (r["bucket_ms"] for r in rows) if b <= settled]
        if late:
            spi = spi_refresh(instrument=instrument, interval=interval, start_ms=late[0], end_ms=late[-1])
            for bar in changed[interval]:
                for name, value in spi.get(_dt_to_ms(bar.bucket_start), {}).items():
                    setattr(bar, name, value)
    if replaced:
        PressureBar.objects.filter(pk__in=replaced, source=PressureBar.Source.TRADES).update(final=False)
    return changed


@dataclass(frozen=True)
class IngestResult:
    trades_received: int
    trades_inserted: int
    duplicates: int
    rejected: int
    book_samples: int
    bars_changed: int
    conflicts: int = 0
    stored: TradeStoreResult | None = None  # reasons and batch positions of what was kept out


def market_batch_ingest(
    *, instrument: Instrument, trades: Sequence[TradeRow], book_samples: Sequence = (), source: str,
    sequence_gaps: int = 0, publish: bool = True, validated: Validated | None = None,
) -> IngestResult:
    """Store one batch from any source (live, replay, import), refresh its bars, push them live.

    All of it commits together, so a worker killed mid-batch leaves nothing half-written and
    the retried batch lands exactly once. `validated`: the result of trades_validate(trades), when
    the caller already has it.
    """
    trades = list(trades)
    with transaction.atomic():
        scale = instrument_lock(instrument=instrument)
        tail = _trade_tail(instrument=instrument) if trades else None
        stored = trades_store(instrument=instrument, rows=trades, validated=validated or trades_validate(trades),
                              scale=scale)
        appended = appended_trades(instrument=instrument, rows=stored.checked.rows, inserted=stored.inserted,
                                   tail=tail)
        samples = book_samples_store(instrument=instrument, samples=book_samples)
        times = [t for t in (stored.min_time_ms, stored.max_time_ms) if t is not None]
        times += [s.time_ms for s in (book_samples[0], book_samples[-1])] if book_samples else []
        changed: dict[str, list[PressureBar]] = {}
        if times:
            changed = bars_refresh(instrument=instrument, start_ms=min(times), end_ms=max(times), appended=appended,
                                   clock_ms=max(times))
        finalized = bars_finalize(instrument=instrument, clock_ms=max(times)) if times else {}
        source_status_record(
            name=source, trades_inserted=stored.inserted, duplicates=stored.duplicates,
            rejected=stored.rejected, conflicts=stored.conflicts, book_samples=samples, sequence_gaps=sequence_gaps,
            last_event_ms=max(times) if times else None,
        )
        if publish and (changed or finalized):
            transaction.on_commit(lambda: bars_publish(instrument=instrument, changed=changed, finalized=finalized))
    return IngestResult(
        trades_received=stored.received, trades_inserted=stored.inserted, duplicates=stored.duplicates,
        rejected=stored.rejected, book_samples=samples, bars_changed=sum(len(v) for v in changed.values()),
        conflicts=stored.conflicts, stored=stored,
    )


def bars_publish(*, instrument: Instrument, changed: dict[str, list[PressureBar]],
                 finalized: dict[str, list[PressureBar]]) -> None:
    """Tell listeners (live pushes, alerts) what a committed batch changed and which bars became final."""
    merged = {interval: list({b.bucket_start: b for b in [*changed.get(interval, []), *finalized.get(interval, [])]}
                             .values()) for interval in {*changed, *finalized}}
    bars_changed.send(sender=PressureBar, instrument=instrument, changed=merged, finalized=finalized)
    if finalized:
        bars_finalized.send(sender=PressureBar, instrument=instrument, finalized=finalized)


def bars_finalize_due(*, instrument: Instrument, publish: bool = True) -> dict[str, list[PressureBar]]:
    """Make an instrument's due bars final when no batch arrives to do it (a quiet market, a stopped feed)."""
    with transaction.atomic():
        instrument_lock(instrument=instrument)
        finalized = bars_finalize(instrument=instrument)
        if publish and finalized:
            transaction.on_commit(lambda: bars_publish(instrument=instrument, changed={}, finalized=finalized))
    return finalized


def drop_risk_publish(*, instrument: Instrument, interval: str, bucket_ms: int) -> float | None:
    """Predict a newly final bar's drop risk, then push the bar and its headline again (alerts on drop risk
    are evaluated then: the bar's other values were final already)."""
    with transaction.atomic():
        risk = drop_risk_predict(instrument=instrument, interval=interval, bucket_ms=bucket_ms)
        if risk is not None:
            bar = PressureBar.objects.get(instrument=instrument, interval=interval, bucket_start=_ms_to_dt(bucket_ms))
            transaction.on_commit(lambda: bars_publish(instrument=instrument, changed={interval: [bar]},
                                                       finalized={interval: [bar]}))
    return risk
