"""Writes of bars from exchange klines (source "klines", final: their buckets are in the past).

Klines never mix with trade-built bars: a bucket (at any interval) that has a trade-built bar keeps it,
and a trade-built bar replaces a kline bar of its bucket (services._bars_upsert). A kline bucket
already stored with the same values is left alone (re-import changes nothing); with other values it is
a conflict and the first stored copy is kept. Coarser bars are the exact rollup of the kline bars stored
under them, so they are recomputed when a later import fills a bucket further. 15m klines are not
stored as such: only their complete hours are, as 1h bars.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from apps.markets.decimal_text import as_float, digits_of, text_matrix, units_of, units_text
from apps.markets.klines import KLINE_INTERVAL_MS, Klines
from apps.markets.models import Instrument
from apps.markets.services import instrument_lock
from apps.pressure import kline_bars as kb
from apps.pressure.models import PressureBar
from apps.pressure.services.versions import bars_version_bump

_TABLE = PressureBar._meta.db_table
_VARYING = ("bucket_start", "open", "high", "low", "close", "vwap", "trades", "taker_buy_base", "taker_sell_base",
            "taker_buy_quote", "taker_sell_quote", "delta_base", "taker_sell_ratio")
# Written as constants: no book fields, no trade-count split, no large trades, no index yet.
_FIXED = {"source": PressureBar.Source.KLINES, "final": True, "book_samples": 0, "buy_trades": 0, "sell_trades": 0,
          "large_trade_base": 0.0, "large_trade_sell_base": 0.0, "regime": "", "spi_components": "{}",
          "spi_missing": "[]", "drop_risk_model": ""}
_PRICES = ("open", "high", "low", "close")
_AMOUNTS = {"taker_buy_base": "buy_base", "taker_sell_base": "sell_base", "taker_buy_quote": "buy_quote",
            "taker_sell_quote": "sell_quote"}
LINES_KEPT = 20


@dataclass
class IntervalCounts:
    inserted: int = 0
    updated: int = 0  # coarser bars recomputed over more klines than before
    unchanged: int = 0
    conflicts: int = 0
    trade_built: int = 0  # buckets left to their trade-built bars
    incomplete: int = 0  # 15m klines: hours with fewer than four, not stored


@dataclass
class KlineStoreResult:
    klines: int = 0
    duplicates: int = 0  # exact copies in the file
    intervals: dict[str, IntervalCounts] = field(default_factory=dict)
    # First lines of klines (in the file) in each case, for "line N" reports.
    conflict_lines: list[int] = field(default_factory=list)
    trade_built_lines: list[int] = field(default_factory=list)
    incomplete_lines: list[int] = field(default_factory=list)

    def note(self, kind: str, lines) -> None:
        kept = getattr(self, f"{kind}_lines")
        kept.extend(int(n) for n in list(lines)[: max(0, LINES_KEPT - len(kept))])


def kline_bars_store(*, instrument: Instrument, klines: Klines, interval: str) -> KlineStoreResult:
    """Store the bars of validated klines of `interval` and their rollups; all of it commits together."""
    klines, duplicates, conflicts = kb.klines_dedupe(klines)
    result = KlineStoreResult(klines=len(klines) + duplicates + len(conflicts), duplicates=duplicates)
    stored_at = [interval] if interval in kb.STORED else []
    result.intervals = {name: IntervalCounts() for name in (*stored_at, *kb.ROLLUPS[interval])}
    if len(conflicts):
        result.intervals[(stored_at or ["1h"])[0]].conflicts += len(conflicts)
        result.note("conflict", np.sort(conflicts))
    if not len(klines):
        return result
    bars = kb.klines_bars(klines)
    with transaction.atomic():
        instrument_lock(instrument=instrument)
        if stored_at:
            bars = _primary_store(instrument, interval, bars, result)
        for coarse in kb.ROLLUPS[interval]:
            _rollup_store(instrument, interval, coarse, bars, result)
        transaction.on_commit(lambda: bars_version_bump(instrument.pk))
    return result


def _primary_store(instrument: Instrument, interval: str, bars: kb.KlineBars,
                   result: KlineStoreResult) -> kb.KlineBars:
    """Insert the bars whose buckets are free; return the kline bars now stored in the file's buckets."""
    counts = result.intervals[interval]
    stored = _stored(instrument, interval, bars)
    if stored is None:
        counts.inserted += _bars_insert(instrument, interval, bars)
        return bars
    found, trade_built, same = stored
    counts.trade_built += int(trade_built.sum())
    result.note("trade_built", bars.line[trade_built])
    differ = found & ~trade_built & ~same
    counts.conflicts += int(differ.sum())
    result.note("conflict", bars.line[differ])
    counts.unchanged += int((found & same).sum())
    counts.inserted += _bars_insert(instrument, interval, bars.take(~found))
    kept = _stored_kline_bars(instrument, interval, bars.bucket_ms[differ])
    return kb.KlineBars.concat([bars.take(~found | same), kept])


def _rollup_store(instrument: Instrument, base: str, coarse: str, bars: kb.KlineBars, result: KlineStoreResult) -> None:
    counts = result.intervals[coarse]
    size = KLINE_INTERVAL_MS[coarse]
    per_bucket = size // KLINE_INTERVAL_MS[base]
    rolled = kb.bars_rollup(bars, coarse)
    partial = rolled.count < per_bucket
    if base in kb.STORED and partial.any():
        # Kline bars stored before (another file, another run) that complete these buckets.
        extra = _stored_kline_bars(instrument, base, None, within=(rolled.bucket_ms[partial], size))
        extra = extra.take(~np.isin(extra.bucket_ms, bars.bucket_ms))
        if len(extra):
            rolled = kb.bars_rollup(kb.KlineBars.concat([bars, extra]), coarse)
            rolled = rolled.take(np.isin(rolled.bucket_ms, bars.bucket_ms - bars.bucket_ms % size))
    elif partial.any():
        counts.incomplete += int(partial.sum())
        result.note("incomplete", rolled.line[partial])
        rolled = rolled.take(~partial)
    stored = _stored(instrument, coarse, rolled)
    if stored is None:
        counts.inserted += _bars_insert(instrument, coarse, rolled)
        return
    found, trade_built, same = stored
    counts.trade_built += int(trade_built.sum())
    counts.unchanged += int((found & same).sum())
    differ = found & ~trade_built & ~same
    if base in kb.STORED:
        counts.updated += _bars_update(instrument, coarse, rolled.take(differ))
    else:  # 1h bars of 15m klines are primary data: the first stored copy is kept
        counts.conflicts += int(differ.sum())
        result.note("conflict", rolled.line[differ])
    counts.inserted += _bars_insert(instrument, coarse, rolled.take(~found))


# --- reading stored bars -------------------------------------------------------------------------------


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _select(instrument: Instrument, interval: str, lo: int, hi: int, *, klines_only: bool = False) -> list[tuple]:
    """(bucket ms, source, open, high, low, close, trades, buy base, sell base, buy quote, sell quote) of the
    stored bars with bucket in [lo, hi]; amounts as text, prices as text (PostgreSQL) or REAL (SQLite)."""
    if connection.vendor == "postgresql":
        bucket = "(EXTRACT(EPOCH FROM bucket_start) * 1000)::bigint"
        prices = ", ".join(f"CAST({name} AS TEXT)" for name in _PRICES)
    else:
        bucket = "CAST(strftime('%%s', bucket_start) AS INTEGER) * 1000"
        prices = ", ".join(_PRICES)
    amounts = ", ".join(f"CAST({name} AS TEXT)" for name in _AMOUNTS)
    adapt = connection.ops.adapt_datetimefield_value
    params = [instrument.pk, interval, adapt(_dt(lo)), adapt(_dt(hi))]
    sql = (f"SELECT {bucket}, source, {prices}, trades, {amounts} FROM {_TABLE} WHERE instrument_id = %s"
           " AND interval = %s AND bucket_start >= %s AND bucket_start <= %s")
    if klines_only:
        sql, params = sql + " AND source = %s", [*params, PressureBar.Source.KLINES]
    sql += " ORDER BY bucket_start"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _stored(instrument: Instrument, interval: str, bars: kb.KlineBars):
    """None when none of the bars' buckets is stored; else per bar: (stored, trade-built, same values)."""
    if not len(bars):
        return None
    rows = _select(instrument, interval, int(bars.bucket_ms[0]), int(bars.bucket_ms[-1]))
    wanted = set(bars.bucket_ms.tolist())
    rows = [r for r in rows if r[0] in wanted]
    if not rows:
        return None
    buckets = np.array([r[0] for r in rows], dtype=np.int64)
    found = np.isin(bars.bucket_ms, buckets)
    where = np.searchsorted(buckets, bars.bucket_ms[found])
    source = np.array([r[1] for r in rows], dtype=object)[where]
    trade_built = np.zeros(len(bars), dtype=bool)
    trade_built[found] = source != PressureBar.Source.KLINES
    same = np.zeros(len(bars), dtype=bool)
    mine = bars.take(found)
    columns = list(zip(*rows, strict=True))
    equal = np.ones(len(mine), dtype=bool)
    for i, name in enumerate(_PRICES):
        theirs = np.array([float(v) for v in columns[2 + i]], dtype=np.float64)[where]
        # Two prices of at most 15 significant digits differ by 1e-15 of their value or more; SQLite's text to
        # REAL conversion can be an ulp (2.2e-16) off the nearest double. So: equal within 5e-16.
        equal &= np.isclose(theirs, as_float(getattr(mine, name), mine.price_scale), rtol=5e-16, atol=0)
    equal &= np.array(columns[6], dtype=np.int64)[where] == mine.trades.astype(np.int64)
    for i, (name, scale) in enumerate(zip(_AMOUNTS.values(), (mine.base_scale,) * 2 + (mine.quote_scale,) * 2,
                                          strict=True)):
        texts = [columns[7 + i][j] for j in where.tolist()]
        equal &= _amounts_equal(texts, getattr(mine, name), scale)
    same[found] = equal & ~trade_built[found]
    return found, trade_built, same


def _amounts_equal(texts: list[str], units: np.ndarray, scale: int) -> np.ndarray:
    digits = digits_of(*text_matrix(texts))
    finest = max(scale, int(digits.decimals.max(initial=0)))
    theirs = units_of(digits, finest)
    mine = units * 10 ** (finest - scale) if finest != scale else units
    return (digits.plain & (theirs == mine)).astype(bool)


def _stored_kline_bars(instrument: Instrument, interval: str, buckets: np.ndarray | None, *,
                       within: tuple[np.ndarray, int] | None = None) -> kb.KlineBars:
    """Stored kline bars: of the given buckets, or of the finer buckets within coarser ones (starts, size)."""
    if within is not None:
        starts, size = within
        lo, hi = int(starts.min()), int(starts.max()) + size - 1
    else:
        if not len(buckets):
            return _bars_of_rows([])
        lo, hi = int(buckets.min()), int(buckets.max())
    rows = _select(instrument, interval, lo, hi, klines_only=True)
    if within is not None:
        wanted = set(starts.tolist())
        rows = [r for r in rows if r[0] - r[0] % within[1] in wanted]
    else:
        wanted = set(buckets.tolist())
        rows = [r for r in rows if r[0] in wanted]
    return _bars_of_rows(rows)


def _bars_of_rows(rows: list[tuple]) -> kb.KlineBars:
    """KlineBars from a few stored rows (conflicts kept, buckets completed): exact, a Decimal per value."""
    values = [[Decimal(repr(v)) if isinstance(v, float) else Decimal(v) for v in r[2:6]] for r in rows]
    amounts = [[Decimal(v) for v in r[7:11]] for r in rows]

    def scale_of(numbers) -> int:
        return max((max(0, -n.normalize().as_tuple().exponent) for n in numbers), default=0)

    price_scale = scale_of(itertools.chain.from_iterable(values))
    base_scale = scale_of(itertools.chain.from_iterable(a[:2] for a in amounts))
    quote_scale = scale_of(itertools.chain.from_iterable(a[2:] for a in amounts))

    def units(numbers, scale) -> np.ndarray:
        out = np.array([int(n.scaleb(scale)) for n in numbers], dtype=object)
        return out.astype(np.int64) if all(abs(int(u)) < 2**62 for u in out) else out

    cols = list(zip(*values, strict=True)) if values else [(), (), (), ()]
    sums = list(zip(*amounts, strict=True)) if amounts else [(), (), (), ()]
    return kb.KlineBars(
        bucket_ms=np.array([r[0] for r in rows], dtype=np.int64),
        **{name: units(cols[i], price_scale) for i, name in enumerate(_PRICES)},
        trades=np.array([r[6] for r in rows], dtype=np.int64),
        buy_base=units(sums[0], base_scale), sell_base=units(sums[1], base_scale),
        buy_quote=units(sums[2], quote_scale), sell_quote=units(sums[3], quote_scale),
        line=np.zeros(len(rows), dtype=np.int64), count=np.ones(len(rows), dtype=np.int64),
        price_scale=price_scale, base_scale=base_scale, quote_scale=quote_scale,
    )


# --- writing -------------------------------------------------------------------------------------------


def _copy_text(bars: kb.KlineBars, head: str) -> str:
    """PostgreSQL COPY text of the bars' varying columns after `head` (the constant columns). Decimals go in
    exponent form ("2696257e-2"), which numeric input takes exactly: one format per row, no per-value strings."""
    stamps = np.datetime_as_string(bars.bucket_ms.astype("datetime64[ms]").astype("datetime64[s]"), unit="s")
    significand, exponent, defined = kb.vwap_digits(bars)
    vwap = [f"{s}e{e}" if ok else "\\N" for s, e, ok in zip(significand.tolist(), exponent.tolist(),
                                                               defined.tolist(), strict=True)]
    ratio = ["\\N" if r != r else repr(r) for r in kb.sell_ratio(bars).tolist()]

    def number(scale: int) -> str:
        return f"%de-{scale}" if scale else "%d"

    price, base, quote = number(bars.price_scale), number(bars.base_scale), number(bars.quote_scale)
    row = "\t".join([head + "%s+00", price, price, price, price, "%s", "%d", base, base, quote, quote, base, "%s"])
    columns = [np.strings.replace(stamps, "T", " ").tolist(), *(getattr(bars, name).tolist() for name in _PRICES),
               vwap, bars.trades.tolist(), *(getattr(bars, name).tolist() for name in _AMOUNTS.values()),
               (bars.buy_base - bars.sell_base).tolist(), ratio]
    return "".join([row % values + "\n" for values in zip(*columns, strict=True)])


def _bar_columns(bars: kb.KlineBars) -> dict[str, list]:
    """The varying columns of the bars as SQLite takes them: exact decimals as plain text; prices and VWAP as
    doubles (a price has at most 15 significant digits and a VWAP 12: the nearest double reads back equal, as
    Django reads SQLite's REAL to 15 digits, and IEEE division gives that double); nulls as None."""
    stamps = np.datetime_as_string(bars.bucket_ms.astype("datetime64[ms]").astype("datetime64[s]"), unit="s")
    significand, exponent, defined = kb.vwap_digits(bars)
    amounts = {column: (getattr(bars, name), bars.base_scale if "base" in name else bars.quote_scale)
               for column, name in _AMOUNTS.items()}
    amounts["delta_base"] = (bars.buy_base - bars.sell_base, bars.base_scale)
    with np.errstate(invalid="ignore"):
        vwap = np.where(exponent < 0, significand / 10.0 ** np.maximum(-exponent, 0),
                        significand * 10.0 ** np.maximum(exponent, 0))
    return {
        "bucket_start": np.strings.replace(stamps, "T", " ").tolist(),
        **{name: as_float(getattr(bars, name), bars.price_scale).tolist() for name in _PRICES},
        "vwap": [v if ok else None for v, ok in zip(vwap.tolist(), defined.tolist(), strict=True)],
        "trades": bars.trades.tolist(),
        **{column: units_text(units, scale) for column, (units, scale) in amounts.items()},
        "taker_sell_ratio": [None if r != r else r for r in kb.sell_ratio(bars).tolist()],
    }


def _sqlite_literal(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _bars_insert(instrument: Instrument, interval: str, bars: kb.KlineBars) -> int:
    if not len(bars):
        return 0
    fixed = {"instrument_id": instrument.pk, "interval": interval, **_FIXED, "updated_at": timezone.now()}
    names = [*fixed, *_VARYING]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            head = "\t".join(str(v).lower() if isinstance(v, bool) else str(v) for v in fixed.values()) + "\t"
            with cursor.cursor.copy(f"COPY {_TABLE} ({', '.join(names)}) FROM STDIN") as copy:
                copy.write(_copy_text(bars, head.replace("%", "%%")))
        else:
            columns = _bar_columns(bars)
            # The constants as SQL literals (ours, not the file's): half the parameters to bind per row.
            fixed["updated_at"] = connection.ops.adapt_datetimefield_value(fixed["updated_at"])
            literals = ", ".join(_sqlite_literal(v) for v in fixed.values())
            cursor.cursor.executemany(
                f"INSERT INTO {_TABLE} ({', '.join(names)}) VALUES ({literals}, {', '.join(['?'] * len(_VARYING))})",
                zip(*columns.values(), strict=True),
            )
    return len(bars)


def _bars_update(instrument: Instrument, interval: str, bars: kb.KlineBars) -> int:
    """Rewrite kline bars of the given buckets with new values (coarser bars over more klines); a few at a time."""
    if not len(bars):
        return 0
    keys = dict(PressureBar.objects.filter(
        instrument=instrument, interval=interval, source=PressureBar.Source.KLINES,
        bucket_start__in=[_dt(ms) for ms in bars.bucket_ms.tolist()]).values_list("bucket_start", "pk"))
    ratio = kb.sell_ratio(bars)
    vwap = kb.vwap_digits(bars)
    now = timezone.now()
    objs = []
    for i, ms in enumerate(bars.bucket_ms.tolist()):
        value = {name: Decimal(int(getattr(bars, name)[i])).scaleb(-bars.price_scale) for name in _PRICES}
        for column, name in _AMOUNTS.items():
            value[column] = Decimal(int(getattr(bars, name)[i])).scaleb(-(bars.base_scale if "base" in name
                                                                           else bars.quote_scale))
        objs.append(PressureBar(
            pk=keys[_dt(ms)], trades=int(bars.trades[i]), **value,
            delta_base=value["taker_buy_base"] - value["taker_sell_base"],
            taker_sell_ratio=None if ratio[i] != ratio[i] else float(ratio[i]),
            vwap=Decimal(int(vwap[0][i])).scaleb(int(vwap[1][i])) if vwap[2][i] else None, updated_at=now,
        ))
    PressureBar.objects.bulk_update(objs, [*_VARYING[1:], "updated_at"], batch_size=500)
    return len(objs)
