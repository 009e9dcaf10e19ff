"""Chart time ranges a trader picks: presets plus a custom start/end, always in UTC."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pressureweb.lib.params import BadRequest, parse_time

PRESETS = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


# The pages' range inputs are plain text in 24-hour UTC ("2026-12-04 05:47"): a datetime-local input shows AM/PM
# in many locales. The API's ISO 8601 forms are accepted too.
FORM_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}(:\d{2})?)$")


def _form_time(value: str | None, name: str) -> datetime | None:
    value = (value or "").strip()
    match = FORM_TIME.match(value)
    return parse_time(f"{match.group(1)}T{match.group(2)}" if match else value or None, name)


@dataclass(frozen=True)
class ChartRange:
    key: str
    start: datetime
    end: datetime
    live: bool  # ends now, so live updates extend it


def chart_range_parse(params) -> tuple[ChartRange, str | None]:
    """Returns the range and an error message for the page (falling back to 1h)."""
    now = datetime.now(tz=UTC)
    key = params.get("range", "1h")
    if key == "custom":
        try:
            start = _form_time(params.get("start"), "start")
            end = _form_time(params.get("end"), "end") or now
            if start is None or start >= end:
                raise BadRequest("a custom range needs a start before its end")
            return ChartRange("custom", start, end, live=end >= now - timedelta(minutes=1)), None
        except BadRequest as exc:
            return ChartRange("1h", now - PRESETS["1h"], now, True), str(exc)
    if key not in PRESETS:
        return ChartRange("1h", now - PRESETS["1h"], now, True), f"unknown range {key!r}; showing 1h"
    return ChartRange(key, now - PRESETS[key], now, True), None
