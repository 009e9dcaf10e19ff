"""When a rule fires: pure functions, so hysteresis, cooldown and quiet hours are tested alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class Decision:
    fire: bool
    armed: bool  # the state after this evaluation
    reason: str


def crossed(value: float, *, comparator: str, threshold: float) -> bool:
    return value >= threshold if comparator == "gte" else value <= threshold


def rearmed(value: float, *, comparator: str, rearm_level: float) -> bool:
    """Back past the re-arm level: below it for an upward rule, above it for a downward one."""
    return value < rearm_level if comparator == "gte" else value > rearm_level


def alert_decide(
    *, value: float | None, armed: bool, comparator: str, threshold: float, rearm_level: float,
    last_fired_at: datetime | None, cooldown: timedelta, now: datetime,
) -> Decision:
    if value is None:
        return Decision(False, armed, "no data")
    if not armed:
        if rearmed(value, comparator=comparator, rearm_level=rearm_level):
            return Decision(False, True, "re-armed")
        return Decision(False, False, "waiting to re-arm")
    if not crossed(value, comparator=comparator, threshold=threshold):
        return Decision(False, True, "below threshold")
    if last_fired_at is not None and now - last_fired_at < cooldown:
        # Stay armed: if the condition still holds after the cooldown, it fires then.
        return Decision(False, True, "cooling down")
    return Decision(True, False, "crossed")


def in_quiet_hours(*, now: datetime, start: time | None, end: time | None, tz_name: str) -> bool:
    if start is None or end is None or start == end:
        return False
    try:
        local = now.astimezone(ZoneInfo(tz_name)).time()
    except ZoneInfoNotFoundError:
        local = now.time()
    if start < end:
        return start <= local < end
    return local >= start or local < end  # spans midnight, e.g. 22:00-07:00
