"""Time as the project keeps it: UTC everywhere, instants as integer milliseconds since the epoch or aware
datetimes, and ISO 8601 text with a "Z"."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """The wall clock in ms since the epoch (UTC)."""
    return int(time.time() * 1000)


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def dt_to_ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def iso_z(dt: datetime | None) -> str | None:
    """'2026-12-04T05:47:00Z' (microseconds kept when present); None stays None."""
    return None if dt is None else dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
