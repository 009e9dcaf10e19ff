"""Writes of selling-pressure bars, and the one ingestion entry point every source uses."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from apps.markets.models import Instrument
from apps.markets.services import (
    TradeStoreResult,
    book_samples_store,
    instrument_lock,
    source_status_record,
    trades_revision_bump,
    trades_store,
)
from apps.markets.validation import TradeRow, Validated, trades_validate
from apps.pressure import bars as barmath
from apps.pressure.models import PressureBar
from apps.pressure.services.forecast import drop_risk_predict
from apps.pressure.services.index import bars_finalize, spi_refresh
from apps.pressure.services.minutes import (
    BAR_FIELDS,
    AppendedTrades,
    appended_trades,
    minute_bars_compute,
    minute_bars_extend,
    trade_tail,
)
from apps.pressure.services.versions import bars_version_bump_on_commit
from apps.pressure.signals import bars_changed, bars_finalized
from pressureweb.lib.times import dt_to_ms as _dt_to_ms
from pressureweb.lib.times import ms_to_dt as _ms_to_dt
from pressureweb.lib.times import now_ms

logger = logging.getLogger(__name__)


def _bars_upsert(*, instrument: Instrument, rows: dict[str, list[dict]]) -> dict[str, list[PressureBar]]:
    """Write the bars of each interval in `rows` ({interval: [row, ...]}) in one statement; the written bars by
    interval."""
    objs = {
        interval: [
            PressureBar(
                instrument=instrument, interval=interval, bucket_start=_ms_to_dt(row["bucket_ms"]),
                source=PressureBar.Source.TRADES, **{name: row[name] for name in BAR_FIELDS},
            )
            for row in interval_rows
        ]
        for interval, interval_rows in rows.items()
    }
    every = [obj for interval_objs in objs.values() for obj in interval_objs]
    if every:
        # A bar built from trades replaces an imported kline bar of its bucket: the two never mix.
        PressureBar.objects.bulk_create(
            every, update_conflicts=True, unique_fields=["instrument", "interval", "bucket_start"],
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


def _hour_bars(*, instrument: Instrument, start_ms: int, end_ms: int) -> tuple[list[dict], list[int]]:
    """One read of the bars of the hours in [start, end): the trade-built 1m bars (what a batch's minutes grow
    from and what the 5m and 1h rollups add up), by bucket; and the pks of imported kline bars of any interval
    (trade-built bars replace them, and a replaced bar is not final until the trades' own clock says so)."""
    minutes, klines = [], []
    for pk, source, bucket, *values in PressureBar.objects.filter(
        Q(interval="1m", source=PressureBar.Source.TRADES) | Q(source=PressureBar.Source.KLINES),
        # Every interval named, so each is a range scan of the (instrument, interval, bucket) index.
        instrument=instrument, interval__in=list(barmath.INTERVAL_MS),
        bucket_start__gte=_ms_to_dt(start_ms), bucket_start__lt=_ms_to_dt(end_ms),
    ).order_by("bucket_start").values_list("pk", "source", "bucket_start", *BAR_FIELDS):
        if source == PressureBar.Source.KLINES:
            klines.append(pk)
        else:
            minutes.append({"bucket_ms": _dt_to_ms(bucket), **dict(zip(BAR_FIELDS, values, strict=True))})
    return minutes, klines


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
    minute, hour = barmath.INTERVAL_MS["1m"], barmath.INTERVAL_MS["1h"]
    lo = start_ms - start_ms % minute
    hi = end_ms - end_ms % minute + minute
    stored, replaced = _hour_bars(instrument=instrument, start_ms=lo - lo % hour,
                                  end_ms=(hi - 1) - (hi - 1) % hour + hour)
    rows = None
    if appended is not None:
        rows = minute_bars_extend(instrument=instrument, appended=appended, start_ms=lo, end_ms=hi,
                                  stored=[m for m in stored if lo <= m["bucket_ms"] < hi])
    if rows is None:
        rows = minute_bars_compute(instrument=instrument, start_ms=lo, end_ms=hi)
    changed = _bars_upsert(instrument=instrument, rows={"1m": rows})
    clock = clock_ms or now_ms()
    late = lo + minute + settings.BAR_FINAL_GRACE_MS <= clock  # a final (or due) minute changed
    if changed["1m"] and (late or _provisional_due(instrument.pk, clock)):
        # The SPI of the touched minutes, also set on the copies that bars_upsert returned.
        spi = spi_refresh(instrument=instrument, start_ms=lo, end_ms=hi - 1)
        for bar in changed["1m"]:
            for name, value in spi.get(_dt_to_ms(bar.bucket_start), {}).items():
                setattr(bar, name, value)
    # The minutes of every touched hour as they now stand serve the 5m and the 1h rollups.
    merged = {m["bucket_ms"]: m for m in stored} | {r["bucket_ms"]: r for r in rows}
    minutes = [merged[b] for b in sorted(merged)]
    coarse = {}
    for interval in ("5m", "1h"):
        size = barmath.INTERVAL_MS[interval]
        c_lo, c_hi = lo - lo % size, (hi - 1) - (hi - 1) % size + size
        coarse[interval] = barmath.rollup([m for m in minutes if c_lo <= m["bucket_ms"] < c_hi], interval_ms=size)
    changed |= _bars_upsert(instrument=instrument, rows=coarse)
    for interval, interval_rows in coarse.items():
        settled = (clock_ms or now_ms()) - settings.BAR_FINAL_GRACE_MS - barmath.INTERVAL_MS[interval]
        late = [b for b in (r["bucket_ms"] for r in interval_rows) if b <= settled]
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
        tail = trade_tail(instrument=instrument) if trades else None
        stored = trades_store(instrument=instrument, rows=trades, validated=validated or trades_validate(trades),
                              scale=scale)
        appended = appended_trades(instrument=instrument, rows=stored.checked.rows, inserted=stored.inserted,
                                   tail=tail)
        if stored.inserted and appended is None:  # trades landed before the newest: copies of the tail are stale
            trades_revision_bump(instrument_ids=[instrument.pk])
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
