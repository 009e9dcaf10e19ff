"""Reads for the markets overview: per instrument, the index headline of the last closed minute, the CVD change
over the last hour of closed minutes, the index over that hour (the sparkline) and the newest (forming) bar."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Sum

from apps.markets.models import Instrument
from apps.pressure.models import PressureBar
from apps.pressure.selectors import index_headlines, latest_bars
from pressureweb.lib.times import iso_z

GLANCE_MINUTES = 60


@dataclass(frozen=True)
class OverviewRow:
    instrument: Instrument
    bar: PressureBar | None  # the newest 1m bar, forming or final
    headline: dict | None  # index_headlines: of the latest final 1m bar
    cvd_change: Decimal | None  # base currency, over the closed minutes of the last hour
    spark: dict  # {"x": [ISO time], "y": [index]}, final 1m bars of the last hour


def cvd_change(*, instrument_id: int, end: datetime, minutes: int = GLANCE_MINUTES) -> Decimal | None:
    """The sum of the deltas of the final 1m bars starting in (end - minutes, end]."""
    return cvd_changes(ends={instrument_id: end}, minutes=minutes)[instrument_id]


def cvd_changes(*, ends: dict[int, datetime], minutes: int = GLANCE_MINUTES) -> dict[int, Decimal | None]:
    """cvd_change of many instruments ({instrument id: end}), one grouped query per distinct end (live instruments
    share their last closed minute, so usually one query in all)."""
    by_end: dict[datetime, list[int]] = {}
    for pk, end in ends.items():
        by_end.setdefault(end, []).append(pk)
    out: dict[int, Decimal | None] = dict.fromkeys(ends)
    for end, ids in by_end.items():
        rows = (PressureBar.objects.filter(instrument_id__in=ids, interval="1m", final=True,
                                           bucket_start__gt=end - timedelta(minutes=minutes), bucket_start__lte=end)
                .values("instrument_id").annotate(total=Sum("delta_base")).values_list("instrument_id", "total"))
        out.update(rows)
    return out


def index_recent(*, instrument_ids: list[int], since: datetime) -> dict[int, dict]:
    """The index of each instrument's final 1m bars since `since`, in one query (the sparklines)."""
    out = {pk: {"x": [], "y": []} for pk in instrument_ids}
    rows = (PressureBar.objects.filter(instrument_id__in=instrument_ids, interval="1m", final=True,
                                       bucket_start__gte=since)
            .exclude(spi=None).order_by("bucket_start").values_list("instrument_id", "bucket_start", "spi"))
    for pk, ts, spi in rows:
        out[pk]["x"].append(iso_z(ts))
        out[pk]["y"].append(round(spi, 2))
    return out


def overview_rows(*, instruments: list[Instrument], since: datetime | None = None) -> list[OverviewRow]:
    since = since or datetime.now(tz=UTC) - timedelta(minutes=GLANCE_MINUTES)
    ids = [inst.pk for inst in instruments]
    bars = latest_bars(instrument_ids=ids)
    sparks = index_recent(instrument_ids=ids, since=since)
    headlines = index_headlines(instrument_ids=ids, interval="1m")
    changes = cvd_changes(ends={pk: datetime.fromisoformat(h["bucket_start"]) for pk, h in headlines.items() if h})
    return [OverviewRow(inst, bars.get(inst.pk), headlines[inst.pk], changes.get(inst.pk), sparks[inst.pk])
            for inst in instruments]
