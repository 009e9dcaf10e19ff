"""Writes of market data. Every step is idempotent: replays of the same rows change nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from django.db import DataError, IntegrityError, InternalError, connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from apps.markets.models import BookSample, Exchange, Instrument, SourceStatus, Trade, trades_revision_new
from apps.markets.validation import Scale, TradeRow, Validated, scale_admit, trades_validate

logger = logging.getLogger(__name__)

_TRADE_COLUMNS = ("instrument_id", "trade_id", "time_ms", "price", "qty", "taker_sell")
_SCALE_FIELDS = ("price_decimals", "price_int_digits", "qty_decimals", "qty_int_digits")
_MAX_PARAMS = 10_000  # ids per IN (...) on SQLite: well under its variable limit


@dataclass(frozen=True)
class TradeStoreResult:
    received: int
    inserted: int
    rejected: int
    min_time_ms: int | None
    max_time_ms: int | None
    conflicts: int = 0
    # What was kept out and why, with batch positions (for "line N" reports); conflicts are listed
    # under the reason CONFLICT but not counted in `rejected`.
    checked: Validated | None = None

    @property
    def duplicates(self) -> int:
        return self.received - self.rejected - self.conflicts - self.inserted


CONFLICT = "conflict: same trade id, different contents (the first stored copy is kept)"


def instrument_ensure(
    *, exchange_slug: str, market: str, symbol: str, base: str, quote: str, kind: str = "spot",
    exchange_name: str | None = None, is_replay: bool = False,
) -> Instrument:
    exchange, _ = Exchange.objects.get_or_create(
        slug=exchange_slug, defaults={"name": exchange_name or exchange_slug.title(), "is_replay": is_replay}
    )
    instrument, _ = Instrument.objects.get_or_create(
        exchange=exchange, market=market, symbol=symbol.upper(),
        defaults={"base": base.upper(), "quote": quote.upper(), "kind": kind},
    )
    return instrument


def instrument_lock(*, instrument: Instrument) -> Scale:
    """Take the instrument's row lock for the current transaction and read its scale fresh.

    Writers of one instrument take turns behind it, so bars are never computed from a view of the
    trades that misses another writer's batch, and two batches never widen the scale past each other.
    """
    *values, instrument.trades_revision = (Instrument.objects.select_for_update().filter(pk=instrument.pk)
                                           .values_list(*_SCALE_FIELDS, "trades_revision").get())
    for name, value in zip(_SCALE_FIELDS, values, strict=True):
        setattr(instrument, name, value)
    return Scale(*values)


def trades_revision_bump(*, instrument_ids) -> None:
    """Stored trades of these instruments changed other than by appending after the newest one."""
    Instrument.objects.filter(pk__in=instrument_ids).update(trades_revision=trades_revision_new())


def _stored_trades(cursor, pk: int, ids: list[int]) -> dict[int, tuple]:
    """The stored (time_ms, price, qty, taker_sell) of those of `ids` the instrument has."""
    table = Trade._meta.db_table
    lo, hi = min(ids), max(ids)
    wanted = set(ids)
    select = f"SELECT trade_id, time_ms, price, qty, taker_sell FROM {table} WHERE instrument_id = %s AND "
    found: list[tuple] = []
    if hi - lo < 4 * len(ids):  # dense ids (the usual exchange counter): one index range scan
        cursor.execute(select + "trade_id BETWEEN %s AND %s", [pk, lo, hi])
        found = cursor.fetchall()
    elif connection.vendor == "postgresql":  # sparse ids (hashes of text ids): one probe each
        cursor.execute(select + "trade_id = ANY(%s)", [pk, ids])
        found = cursor.fetchall()
    else:
        for i in range(0, len(ids), _MAX_PARAMS):
            chunk = ids[i:i + _MAX_PARAMS]
            cursor.execute(select + f"trade_id IN ({', '.join(['%s'] * len(chunk))})", [pk, *chunk])
            found += cursor.fetchall()
    return {row[0]: row[1:] for row in found if row[0] in wanted}


def _same_trade(row: TradeRow, stored: tuple) -> bool:
    time_ms, price, qty, taker_sell = stored
    # Decimals compare by value ('61000.50' == '61000.5'); SQLite hands back floats of <= 15 digits.
    return (row.time_ms == time_ms and bool(taker_sell) == row.taker_sell
            and Decimal(row.price) == Decimal(str(price)) and Decimal(row.qty) == Decimal(str(qty)))


def _fresh_rows(cursor, pk: int, checked: Validated) -> tuple[list[TradeRow], list[int]]:
    """The rows not stored yet (first copy of each id), and the indices of conflicting copies.

    A repeated id with the same contents is a duplicate; with other contents it is a conflict and
    the first copy wins: the stored one, else the first in the batch. Both backends agree on that.
    """
    rows = checked.rows
    stored = _stored_trades(cursor, pk, [r.trade_id for r in rows]) if rows else {}
    if not stored and len({r.trade_id for r in rows}) == len(rows):
        return rows, []
    first: dict[int, TradeRow] = {}
    fresh, conflicts = [], []
    for i, row in enumerate(rows):
        known = stored.get(row.trade_id)
        if known is None and row.trade_id not in first:
            first[row.trade_id] = row
            fresh.append(row)
        elif not (_same_trade(row, known) if known is not None else first[row.trade_id] == row):
            conflicts.append(i)
    return fresh, conflicts


def _insert_trades_sqlite(cursor, pk: int, rows: list[TradeRow]) -> int:
    before = connection.connection.total_changes
    cursor.executemany(
        f"INSERT OR IGNORE INTO {Trade._meta.db_table} ({', '.join(_TRADE_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
        [(pk, *r) for r in rows],
    )
    return connection.connection.total_changes - before


def _copy_text(pk: int, rows: list[TradeRow]) -> str:
    # Validated rows hold only ASCII digits, dots, ints and bools: nothing needs COPY escaping.
    return "".join(f"{pk}\t{i}\t{t}\t{p}\t{q}\t{'t' if s else 'f'}\n" for i, t, p, q, s in rows)


def _insert_trades_postgresql(cursor, pk: int, rows: list[TradeRow]) -> int:
    # Fast path: the rows are known to be fresh (_fresh_rows), so COPY straight into the table. If a
    # concurrent writer stored some of them meanwhile, the COPY fails on the unique constraint and
    # the batch goes through a staging table with ON CONFLICT DO NOTHING.
    # Each step holds its own savepoint, so a refusal rolls back only that step (_insert_splitting).
    try:
        with transaction.atomic():
            with cursor.cursor.copy(f"COPY {Trade._meta.db_table} ({', '.join(_TRADE_COLUMNS)}) FROM STDIN") as copy:
                copy.write(_copy_text(pk, rows))
        return len(rows)
    except psycopg.errors.UniqueViolation:
        logger.info("concurrent insert of the same trades; retrying with ON CONFLICT")
    with transaction.atomic():
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS trade_stage (instrument_id bigint, trade_id bigint, time_ms bigint,"
            " price numeric, qty numeric, taker_sell boolean) ON COMMIT DELETE ROWS"
        )
        with cursor.cursor.copy(f"COPY trade_stage ({', '.join(_TRADE_COLUMNS)}) FROM STDIN") as copy:
            copy.write(_copy_text(pk, rows))
        cursor.execute(
            f"INSERT INTO {Trade._meta.db_table} ({', '.join(_TRADE_COLUMNS)})"
            f" SELECT {', '.join(_TRADE_COLUMNS)} FROM trade_stage"
            " ON CONFLICT (instrument_id, trade_id) DO NOTHING"
        )
        inserted = cursor.rowcount
        cursor.execute("TRUNCATE trade_stage")
    return inserted


def _insert_trades_generic(cursor, pk: int, rows: list[TradeRow]) -> int:
    objs = [Trade(instrument_id=pk, **r._asdict()) for r in rows]
    before = Trade.objects.filter(instrument_id=pk).count()
    Trade.objects.bulk_create(objs, ignore_conflicts=True, batch_size=5000)
    return Trade.objects.filter(instrument_id=pk).count() - before


# What a database answers when it refuses the rows themselves. A dropped connection (OperationalError,
# InterfaceError) is not one of them: it fails the batch, whose retry then lands whole.
_REFUSALS = (DataError, IntegrityError, InternalError, psycopg.errors.DataError, psycopg.errors.IntegrityError,
             psycopg.errors.InternalError, psycopg.errors.RaiseException, OverflowError, ValueError, TypeError)


def _insert_splitting(cursor, pk: int, rows: list[TradeRow], refused: list[tuple[TradeRow, str]]) -> int:
    """Insert rows; a batch the database refuses is halved and retried down to the rows it refuses,
    which land in `refused` with the database's reason. Good rows are never lost with a bad one."""
    try:
        if connection.vendor == "postgresql":  # savepoints of its own
            return _insert_trades_postgresql(cursor, pk, rows)
        with transaction.atomic():
            insert = _insert_trades_sqlite if connection.vendor == "sqlite" else _insert_trades_generic
            return insert(cursor, pk, rows)
    except _REFUSALS as exc:
        if len(rows) == 1:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            refused.append((rows[0], f"refused by the database: {reason[:120]}"))
            return 0
    half = len(rows) // 2
    return _insert_splitting(cursor, pk, rows[:half], refused) + _insert_splitting(cursor, pk, rows[half:], refused)


def trades_store(
    *, instrument: Instrument, rows: Iterable[TradeRow], validated: Validated | None = None,
    scale: Scale | None = None,
) -> TradeStoreResult:
    """Validate and insert trades; an id already stored (or earlier in the batch) is not stored again.

    `scale`: the instrument's scale as read under instrument_lock by the caller's transaction (it is
    taken here when not given). Duplicates with other contents are counted as conflicts.
    """
    rows = list(rows)
    # Inside a caller's transaction no savepoint: a failure here fails the caller's whole batch anyway.
    with transaction.atomic(savepoint=False):
        if scale is None:
            scale = instrument_lock(instrument=instrument)
        checked, widened = scale_admit(validated or trades_validate(rows), scale)
        if checked.rejected:
            logger.warning(
                "rejected %d of %d trades for %s: %s (example: %r)",
                checked.rejected_total, len(rows), instrument, dict(checked.rejected),
                next(iter(checked.examples.values())),
            )
        if not checked.rows:
            return TradeStoreResult(len(rows), 0, checked.rejected_total, None, None, checked=checked)
        if widened != scale:
            _scale_widen(instrument, widened)
        with connection.cursor() as cursor:
            fresh, conflicts = _fresh_rows(cursor, instrument.pk, checked)
            refused: list[tuple[TradeRow, str]] = []
            inserted = _insert_splitting(cursor, instrument.pk, fresh, refused) if fresh else 0
    times = [r.time_ms for r in checked.rows]
    if refused:
        index = {id(row): i for i, row in enumerate(checked.rows)}
        for row, reason in refused:
            checked.reject(reason, row, checked.origin(index[id(row)]))
    for i in conflicts:
        checked.reject(CONFLICT, checked.rows[i], checked.origin(i))
    if conflicts:
        logger.warning("%d conflicting copies of stored trades for %s kept out", len(conflicts), instrument)
    return TradeStoreResult(len(rows), inserted, checked.rejected_total - len(conflicts), min(times), max(times),
                            conflicts=len(conflicts), checked=checked)


def _scale_widen(instrument: Instrument, scale: Scale) -> None:
    Instrument.objects.filter(pk=instrument.pk).update(
        **{name: Greatest(F(name), value) for name, value in zip(_SCALE_FIELDS, scale, strict=True)}
    )
    for name, value in zip(_SCALE_FIELDS, scale, strict=True):
        setattr(instrument, name, max(getattr(instrument, name), value))


def book_samples_store(*, instrument: Instrument, samples: Sequence) -> int:
    """Store book summaries (objects with the BookSummary fields); one per instrument and ms."""
    if not samples:
        return 0
    objs = []
    for s in samples:
        bid_depth, ask_depth = s.bid_depth, s.ask_depth
        objs.append(
            BookSample(
                instrument=instrument, time_ms=s.time_ms,
                bid_price=s.bid_price, bid_qty=s.bid_qty, ask_price=s.ask_price, ask_qty=s.ask_qty,
                bid_depth_0_1pct=bid_depth[0], ask_depth_0_1pct=ask_depth[0],
                bid_depth_0_5pct=bid_depth[1], ask_depth_0_5pct=ask_depth[1],
                bid_depth_1pct=bid_depth[2], ask_depth_1pct=ask_depth[2],
                bid_depth_2pct=bid_depth[3], ask_depth_2pct=ask_depth[3],
            )
        )
    BookSample.objects.bulk_create(objs, ignore_conflicts=True, batch_size=2000)
    return len(objs)


def source_status_record(
    *, name: str, trades_inserted: int = 0, duplicates: int = 0, rejected: int = 0, conflicts: int = 0,
    book_samples: int = 0,
    sequence_gaps: int = 0, errors: int = 0, last_event_ms: int | None = None, last_error: str = "",
) -> None:
    """Add to a source's counters with one UPDATE, so concurrent workers never lose counts."""
    updates = {
        "batches": F("batches") + 1,
        "trades_inserted": F("trades_inserted") + trades_inserted,
        "duplicates": F("duplicates") + duplicates,
        "rejected": F("rejected") + rejected,
        "conflicts": F("conflicts") + conflicts,
        "book_samples": F("book_samples") + book_samples,
        "sequence_gaps": F("sequence_gaps") + sequence_gaps,
        "errors": F("errors") + errors,
        "last_ingest_at": timezone.now(),
    }
    if last_event_ms is not None:
        updates["last_event_ms"] = last_event_ms
    if last_error:
        updates["last_error"] = last_error[:2000]
    if not SourceStatus.objects.filter(name=name).update(**updates):  # a source's first batch
        SourceStatus.objects.get_or_create(name=name)
        SourceStatus.objects.filter(name=name).update(**updates)


def raw_data_prune(*, older_than_ms: int, batch: int = 50_000) -> dict[str, int]:
    """Delete trades and book samples older than the cutoff, in batches; bars are kept."""
    deleted = {"trades": 0, "book_samples": 0}
    for model, key in ((Trade, "trades"), (BookSample, "book_samples")):
        while True:
            rows = list(model.objects.filter(time_ms__lt=older_than_ms).values_list("pk", "instrument_id")[:batch])
            if not rows:
                break
            with transaction.atomic():
                deleted[key] += model.objects.filter(pk__in=[pk for pk, _ in rows]).delete()[0]
                if model is Trade:
                    trades_revision_bump(instrument_ids={instrument for _, instrument in rows})
    return deleted
