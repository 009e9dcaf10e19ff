"""Talking to other people's HTTP servers: the one Retry-After parser and the one retry policy.

Every source (exchanges through ccxt, the on-chain clients through requests) fails fast with a
typed error; what happens next is decided here, once:

- :func:`retry_after_s` reads a Retry-After header, in either form RFC 9110 allows
  (delta-seconds or an HTTP date), as seconds from now, clamped to [0, MAX_RETRY_AFTER_S].
- :data:`SOURCE_BACKOFF` says how long a source is left alone after a failure: what the server
  asked for in Retry-After, else exponential back-off with jitter. The exchanges' rate-limit
  state machine, the flows' cross-worker back-off and the collector's reconnects use it.
- :data:`SOURCE_TASK_RETRY` is how a Celery task that polls a source retries.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER_S = 3600.0  # an hour: a server asking for more is treated as asking for an hour


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds ("120") or an HTTP date
    ("Wed, 21 Oct 2015 07:28:00 GMT", compared with ``now``, UTC). Clamped to [0, 1 hour];
    None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" dates: UTC by RFC 5322
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(tz=UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def retry_after_header(headers: Mapping | None, *, now: datetime | None = None) -> float | None:
    """:func:`retry_after_s` of a response's Retry-After header (names compared case-insensitively)."""
    for key, value in (headers or {}).items():
        if isinstance(key, str) and key.lower() == "retry-after":
            return retry_after_s(value if isinstance(value, str) else None, now=now)
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with "equal jitter" (half fixed, half random), so the retries of many
    workers spread out but none comes back sooner than half the nominal delay; a server's
    Retry-After always wins."""

    base_s: float
    max_s: float
    max_retries: int

    def backoff_s(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """The delay before retry number ``attempt`` (1 for the first)."""
        nominal = min(self.max_s, self.base_s * 2 ** max(0, attempt - 1))
        return nominal / 2 + (rng or random).random() * nominal / 2

    def wait_s(self, attempt: int, *, retry_after: float | None,
               rng: random.Random | None = None) -> float:
        """Retry-After when the server sent one, the back-off otherwise."""
        return retry_after if retry_after is not None else self.backoff_s(attempt, rng=rng)

    def celery_options(self, *retry_on: type[BaseException]) -> dict:
        """``@shared_task`` options retrying ``retry_on`` with this back-off (Celery's own jitter)."""
        return {"autoretry_for": retry_on, "retry_backoff": self.base_s, "retry_backoff_max": int(self.max_s),
                "retry_jitter": True, "max_retries": self.max_retries}


# How long a source is left alone after one failure, up to five minutes.
SOURCE_BACKOFF = RetryPolicy(base_s=1.0, max_s=300.0, max_retries=5)
# How a Celery task polling a source retries a temporary fault (or a dropped database connection).
SOURCE_TASK_RETRY = RetryPolicy(base_s=5.0, max_s=600.0, max_retries=5)
