"""Reads for the Sources page: each source and feed with a status a person can act on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from apps.exchanges import ratelimit
from apps.exchanges.adapters import ADAPTERS
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


# What a configured source is doing, in the words the Sources page and the README use.
OFF, NEVER_RUN, RUNNING, FAILING = "off", "never run", "running", "failing"
CONFIGURED_BADGES = {OFF: "", NEVER_RUN: "", RUNNING: "ok", FAILING: "down"}


@dataclass(frozen=True)
class ConfiguredSource:
    slug: str
    exchange: str
    market: str
    symbols: list[str]
    state: str
    reason: str  # why it is in that state, and what changes it

    @property
    def badge(self) -> str:
        return CONFIGURED_BADGES[self.state]


def _configured_state(*, slug: str, source: Source | None, feeds: list[Feed], now: datetime) -> tuple[str, str]:
    if not settings.EXCHANGES_ENABLED:
        return OFF, "EXCHANGES_ENABLED is off (the default with DEBUG=1): set EXCHANGES_ENABLED=1"
    if slug not in settings.EXCHANGE_SOURCES:
        return OFF, f"not in EXCHANGE_SOURCES: add {slug} to it"
    if source is not None and not source.enabled:
        return OFF, "disabled in the admin (Sources): tick enabled"
    if source is None or (not source.requests and not any(f.last_message_at for f in feeds)):
        return NEVER_RUN, "no request sent yet: start the collector (manage.py collect; make run starts it)"
    statuses = {feed_status(feed=f, source=source, now=now) for f in feeds}
    health = source.health.status(dt_to_ms(now))
    if health in (ratelimit.RATE_LIMITED, ratelimit.BANNED, ratelimit.UNREACHABLE):
        return FAILING, f"{Source.State(health).label}: {source.last_error[:200] or 'see the counters below'}"
    if statuses & {STALE, RATE_LIMITED, UNREACHABLE} and not statuses & {LIVE, LAGGING}:
        return FAILING, (f"no trade or book update for over {settings.EXCHANGE_STALE_SECONDS} s: "
                         "is manage.py collect running?")
    return RUNNING, f"{sum(s in (LIVE, LAGGING) for s in statuses)} of {len(statuses)} feeds live or lagging"


def sources_configured(*, now: datetime | None = None) -> list[ConfiguredSource]:
    """Every source this build can read (exchange, market, the symbols it collects), with its state."""
    now = now or datetime.now(tz=UTC)
    stored = {s.slug: s for s in Source.objects.select_related("exchange")}
    feeds: dict[str, list[Feed]] = {}
    for feed in Feed.objects.select_related("source", "instrument").filter(enabled=True):
        feeds.setdefault(feed.source.slug, []).append(feed)
    bases = {b.upper() for b in settings.EXCHANGE_DEFAULT_BASES}
    rows = []
    for slug, cls in sorted(ADAPTERS.items()):
        symbols = [spec.symbol for spec in cls.defaults if spec.base in bases]
        symbols += sorted({f.instrument.symbol for f in feeds.get(slug, [])} - set(symbols))
        state, reason = _configured_state(slug=slug, source=stored.get(slug), feeds=feeds.get(slug, []), now=now)
        rows.append(ConfiguredSource(slug, cls.exchange_name, cls.market, symbols, state, reason))
    return rows
