"""Query parameter parsing for the public API: every bad value becomes a clear 400 message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils.dateparse import parse_datetime

from apps.markets.models import Instrument
from apps.pressure.models import INTERVALS
from apps.pressure.selectors import instrument_lookup

MAX_BARS = 20_000
DEFAULT_SPAN = timedelta(hours=1)


class BadRequest(ValueError):
    pass


@dataclass(frozen=True)
class BarQuery:
    instrument: Instrument
    interval: str
    start: datetime
    end: datetime
    format: str


def parse_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        dt = parse_datetime(value.replace(" ", "+")) if "T" in value or ":" in value else None
        if dt is None:
            dt = datetime.fromisoformat(value)
    except ValueError:
        dt = None
    if dt is None:
        raise BadRequest(f"{name} must be an ISO 8601 time such as 2024-08-09T00:00:00Z, got {value!r}")
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def bar_query_parse(params) -> BarQuery:
    missing = [k for k in ("exchange", "market", "symbol") if not params.get(k)]
    if missing:
        raise BadRequest(f"missing parameter(s): {', '.join(missing)}")
    interval = params.get("interval", "1m")
    if interval not in INTERVALS:
        raise BadRequest(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    fmt = params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest(f"format must be json or csv, got {fmt!r}")
    instrument = instrument_lookup(exchange=params["exchange"], market=params["market"], symbol=params["symbol"])
    if instrument is None:
        raise BadRequest(
            f"unknown instrument {params['exchange']}/{params['market']}/{params['symbol']}"
            " (replayed data lives under exchange=binance-replay)"
        )
    end = parse_time(params.get("end"), "end") or datetime.now(tz=UTC)
    start = parse_time(params.get("start"), "start") or end - DEFAULT_SPAN
    if start >= end:
        raise BadRequest("start must be before end")
    if (end - start) / INTERVALS[interval] > MAX_BARS:
        raise BadRequest(f"range too long: at most {MAX_BARS:,} bars per request; use a coarser interval")
    return BarQuery(instrument, interval, start, end, fmt)
