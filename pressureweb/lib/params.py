"""Times in query parameters (the API's and the chart pages'): every bad value becomes a clear message.

A time is ISO 8601 in ASCII digits, UTC when no zone is given, and must stay between years 1 and 9999
once moved to UTC; a default derived from another time (start = end minus a span) must too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils.dateparse import parse_datetime

EARLIEST = datetime.min.replace(tzinfo=UTC)
EXAMPLE = "2024-08-09T00:00:00Z"


class BadRequest(ValueError):
    pass


def parse_time(value: str | None, name: str) -> datetime | None:
    """The time ``value`` names, in UTC; None when absent. Raises BadRequest with a message naming ``name``."""
    if value is None:
        return None
    # Python's parsers take any Unicode digit ('٢٠٢٤' for 2024): accept only what every client can read back.
    dt = None
    if value.isascii():
        try:
            dt = parse_datetime(value.replace(" ", "+")) if "T" in value or ":" in value else None
            if dt is None:
                dt = datetime.fromisoformat(value)
        except ValueError:
            dt = None
    if dt is None:
        raise BadRequest(f"{name} must be an ISO 8601 time such as {EXAMPLE}, got {value!r}")
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        raise BadRequest(f"{name} must be a time between years 1 and 9999 in UTC, got {value!r}") from None


def time_window(*, start: datetime | None, end: datetime | None, default_span: timedelta,
                now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) from optional bounds: end defaults to now, start to end minus ``default_span``."""
    end = end or now or datetime.now(tz=UTC)
    if start is None:
        if end - EARLIEST < default_span:
            raise BadRequest(f"start defaults to end minus {_span_text(default_span)}, which is before year 1: "
                             "give start")
        start = end - default_span
    if start >= end:
        raise BadRequest("start must be before end")
    return start, end


def _span_text(span: timedelta) -> str:
    hours = span / timedelta(hours=1)
    return "1 hour" if hours == 1 else f"{hours:g} hours"
