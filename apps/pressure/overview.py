"""Reads for the markets overview: per instrument, the index headline of the last closed minute, the CVD change
over the last hour of closed minutes, the index over that hour (the sparkline) and the newest (forming) bar."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Sum

from apps.markets.models import Instrument
from apps.pressure.models import PressureBar
from apps.pressure.selectors import index_headline, latest_bars
from pressureweb.lib.times import iso_z

GLANCE_MINUTES = 60


@dataclass(frozen=True)
class OverviewRow:
    instrument: Instrument
    bar: PressureBar | None  # the newest 1m bar, forming or final
    headline: dict | None  # index_headline of the latest final 1m bar
    cvd_change: Decimal | None  # base currency, over the closed minutes of the last hour
    spark: dict  # {"x": [ISO time], "y": [index]}, final 1m bars of the last hour


def cvd_change(*, instrument_id: int, end: datetime, minutes: int = GLANCE_MINUTES) -> Decimal | None:
    """The sum of the deltas of the final 1m bars starting in [end - minutes, end]."""
    return (PressureBar.objects.filter(instrument_id=instrument_id, interval="1m", final=True,
                                       bucket_start__gt=end - timedelta(minutes=minutes), bucket_start__lte=end)
            .aggregate(total=Sum("delta_base"))["total"])


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
    rows = []
    for inst in instruments:
        headline = index_headline(instrument=inst, interval="1m")
        change = None
        if headline is not None:
            end = datetime.fromisoformat(headline["bucket_start"])
            change = cvd_change(instrument_id=inst.pk, end=end)
        rows.append(OverviewRow(inst, bars.get(inst.pk), headline, change, sparks[inst.pk]))
    return rows
