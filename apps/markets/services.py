"""Writes of market data. Every step is idempotent: replays of the same rows change nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from apps.markets.models import BookSample, Exchange, Instrument, SourceStatus, Trade
from apps.markets.validation import TradeRow, Validated, trades_validate

logger = logging.getLogger(__name__)

_TRADE_COLUMNS = ("instrument_id", "trade_id", "time_ms", "price", "qty", "taker_sell")


@dataclass(frozen=True)
class TradeStoreResult:
    received: int
    inserted: int
    rejected: int
    min_time_ms: int | None
    max_time_ms: int | None

    @property
    def duplicates(self) -> int:
        return self.received - self.rejected - self.inserted


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


def _insert_trades_sqlite(cursor, pk: int, rows: list[TradeRow]) -> int:
    before = connection.connection.total_changes
    cursor.executemany(
        f"INSERT OR IGNORE INTO {Trade._meta.db_table} ({', '.join(_TRADE_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
        [(pk, *r) for r in rows],
    )
    return connection.connection.total_changes - before


def _copy_text(pk: int, rows: list[TradeRow]) -> str:
    # Validated rows hold only digits, dots, ints and bools: nothing needs COPY escaping.
    return "".join(f"{pk}\t{i}\t{t}\t{p}\t{q}\t{'t' if s else 'f'}\n" for i, t, p, q, s in rows)


def _insert_trades_postgresql(cursor, pk: int, rows: list[TradeRow]) -> int:
    # Fast path: skip ids already stored (one index range scan), then COPY straight into the
    # table. If a concurrent writer stored some of them meanwhile, the COPY fails on the unique
    # constraint and the batch goes through the staging table with ON CONFLICT DO NOTHING.
    ids = [r[0] for r in rows]
    cursor.execute(
        f"SELECT trade_id FROM {Trade._meta.db_table} WHERE instrument_id = %s AND trade_id BETWEEN %s AND %s",
        [pk, min(ids), max(ids)],
    )
    existing = {row[0] for row in cursor.fetchall()}
    fresh = rows
    if existing or len(set(ids)) != len(ids):
        fresh = list({r[0]: r for r in rows if r[0] not in existing}.values())
    if not fresh:
        return 0
    try:
        with transaction.atomic():
            with cursor.cursor.copy(f"COPY {Trade._meta.db_table} ({', '.join(_TRADE_COLUMNS)}) FROM STDIN") as copy:
                copy.write(_copy_text(pk, fresh))
        return len(fresh)
    except psycopg.errors.UniqueViolation:
        logger.info("concurrent insert of the same trades; retrying with ON CONFLICT")
    return _insert_trades_postgresql_staged(cursor, pk, fresh)


def _insert_trades_postgresql_staged(cursor, pk: int, rows: list[TradeRow]) -> int:
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


def trades_store(
    *, instrument: Instrument, rows: Iterable[TradeRow], validated: Validated | None = None
) -> TradeStoreResult:
    """Validate and insert trades; duplicates (same exchange trade id) are skipped."""
    rows = list(rows)
    checked = validated or trades_validate(rows)
    if checked.rejected:
        logger.warning(
            "rejected %d of %d trades for %s: %s (example: %r)",
            sum(checked.rejected.values()), len(rows), instrument, dict(checked.rejected),
            next(iter(checked.examples.values())),
        )
    good = checked.rows
    if not good:
        return TradeStoreResult(len(rows), 0, sum(checked.rejected.values()), None, None)
    _widen_decimals(instrument, checked.price_decimals, checked.qty_decimals)
    insert = {
        "sqlite": _insert_trades_sqlite,
        "postgresql": _insert_trades_postgresql,
    }.get(connection.vendor, _insert_trades_generic)
    with transaction.atomic(), connection.cursor() as cursor:
        inserted = insert(cursor, instrument.pk, good)
    times = [r.time_ms for r in good]
    return TradeStoreResult(len(rows), inserted, sum(checked.rejected.values()), min(times), max(times))


def _widen_decimals(instrument: Instrument, price_decimals: int, qty_decimals: int) -> None:
    if price_decimals <= instrument.price_decimals and qty_decimals <= instrument.qty_decimals:
        return
    Instrument.objects.filter(pk=instrument.pk).update(
        price_decimals=Greatest(F("price_decimals"), price_decimals),
        qty_decimals=Greatest(F("qty_decimals"), qty_decimals),
    )
    instrument.refresh_from_db(fields=["price_decimals", "qty_decimals"])


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
    *, name: str, trades_inserted: int = 0, duplicates: int = 0, rejected: int = 0, book_samples: int = 0,
    sequence_gaps: int = 0, errors: int = 0, last_event_ms: int | None = None, last_error: str = "",
) -> None:
    """Add to a source's counters with one UPDATE, so concurrent workers never lose counts."""
    updates = {
        "batches": F("batches") + 1,
        "trades_inserted": F("trades_inserted") + trades_inserted,
        "duplicates": F("duplicates") + duplicates,
        "rejected": F("rejected") + rejected,
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
            ids = list(model.objects.filter(time_ms__lt=older_than_ms).values_list("pk", flat=True)[:batch])
            if not ids:
                break
            deleted[key] += model.objects.filter(pk__in=ids).delete()[0]
    return deleted
