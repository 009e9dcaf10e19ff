"""Reads for the Sources page: each source and feed with a status a person can act on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from apps.exchanges import ratelimit
from apps.exchanges.models import Feed, Source
from pressureweb.lib.times import dt_to_ms

# A feed is live while messages arrive within EXCHANGE_LAGGING_SECONDS, lagging up to EXCHANGE_STALE_SECONDS,
# then stale.
LIVE, LAGGING, STALE, RATE_LIMITED, UNREACHABLE, IDLE = (
    "live", "lagging", "stale", "rate-limited", "unreachable", "not started",
)


# site.css badge classes: ok = green, replay = amber, down = red.
BADGES = {LIVE: "ok", LAGGING: "replay", STALE: "down", RATE_LIMITED: "down", UNREACHABLE: "down", IDLE: "",
          ratelimit.OK: "ok", ratelimit.BACKOFF: "replay", ratelimit.BANNED: "down"}


def status_thresholds() -> tuple[float, float]:
    return float(settings.EXCHANGE_LAGGING_SECONDS), float(settings.EXCHANGE_STALE_SECONDS)


def feed_status(*, feed: Feed, source: Source, now: datetime | None = None) -> str:
    """The source's request state wins (a banned source is not 'stale', it is rate-limited);
    otherwise the age of the newest message, and of the newest book update when the feed has one."""
    now = now or datetime.now(tz=UTC)
    now_ms = dt_to_ms(now)
    state = source.health.status(now_ms)
    if state in (ratelimit.RATE_LIMITED, ratelimit.BANNED):
        return RATE_LIMITED
    if state == ratelimit.UNREACHABLE:
        return UNREACHABLE
    lagging, stale = status_thresholds()
    last = feed.last_message_at
    if last is None:
        return IDLE
    age = (now - last).total_seconds()
    if feed.last_book_at is not None:
        age = max(age, (now - feed.last_book_at).total_seconds())
    if age > stale:
        return STALE
    if age > lagging or not feed.connected:
        return LAGGING
    return LIVE


@dataclass(frozen=True)
class FeedRow:
    feed: Feed
    status: str
    age_s: float | None
    lag_s: float | None  # receive time minus exchange time of the newest trade

    @property
    def badge(self) -> str:
        return BADGES.get(self.status, "")


@dataclass(frozen=True)
class SourceRow:
    source: Source
    status: str
    wait_s: float
    feeds: list[FeedRow]

    @property
    def badge(self) -> str:
        return BADGES.get(self.status, "")

    @property
    def label(self) -> str:
        return self.source.State(self.status).label if self.status in self.source.State.values else self.status


def sources_overview(*, now: datetime | None = None) -> list[SourceRow]:
    now = now or datetime.now(tz=UTC)
    now_ms = dt_to_ms(now)
    feeds_by_source: dict[int, list[Feed]] = {}
    for feed in Feed.objects.select_related("instrument__exchange").order_by("instrument__symbol"):
        feeds_by_source.setdefault(feed.source_id, []).append(feed)
    rows = []
    for source in Source.objects.select_related("exchange").order_by("slug"):
        feed_rows = []
        for feed in feeds_by_source.get(source.pk, []):
            age = (now - feed.last_message_at).total_seconds() if feed.last_message_at else None
            lag = None
            if feed.last_message_at and feed.last_event_ms:
                lag = max(0.0, feed.last_message_at.timestamp() - feed.last_event_ms / 1000)
            feed_rows.append(FeedRow(feed, feed_status(feed=feed, source=source, now=now), age, lag))
        rows.append(SourceRow(source, source.health.status(now_ms), source.health.wait_ms(now_ms) / 1000, feed_rows))
    return rows


def sources_exist() -> bool:
    return Source.objects.exists()
