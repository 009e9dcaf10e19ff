from datetime import datetime

from django.db import models

from apps.exchanges import ratelimit
from apps.markets.models import Exchange, Instrument
from pressureweb.lib.times import ms_to_dt


class Source(models.Model):
    """One exchange market read through ccxt (e.g. binance-usdm), with its request health.

    The health fields are the state machine of :mod:`apps.exchanges.ratelimit`, kept here so
    every worker and the collector obey the same ban, and the Sources page can show it.
    """

    class State(models.TextChoices):
        OK = ratelimit.OK, "ok"
        BACKOFF = ratelimit.BACKOFF, "backing off"
        RATE_LIMITED = ratelimit.RATE_LIMITED, "rate-limited"
        BANNED = ratelimit.BANNED, "banned"
        UNREACHABLE = ratelimit.UNREACHABLE, "unreachable"

    slug = models.SlugField(unique=True, help_text="Adapter name, e.g. binance-usdm.")
    exchange = models.ForeignKey(Exchange, on_delete=models.PROTECT, related_name="sources")
    market = models.SlugField(max_length=16)
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OK)
    until_ms = models.BigIntegerField(null=True, blank=True, help_text="No request before this time (ms, UTC).")
    failures = models.PositiveIntegerField(default=0)
    unreachable_streak = models.PositiveIntegerField(default=0)
    requests = models.BigIntegerField(default=0)
    rate_limited = models.BigIntegerField(default=0, help_text="HTTP 429 answers.")
    bans = models.BigIntegerField(default=0, help_text="HTTP 418 answers (IP ban).")
    server_errors = models.BigIntegerField(default=0, help_text="HTTP 5xx: outcome unknown, not failed.")
    timeouts = models.BigIntegerField(default=0)
    network_errors = models.BigIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def health(self) -> ratelimit.Health:
        return ratelimit.Health(self.state, self.until_ms, self.failures, self.unreachable_streak)


class Feed(models.Model):
    """One instrument read from one source: the trade cursor and the stream's health counters.

    The cursor is the last trade stored (id and/or time, or the exchange's own paging token);
    it moves in the same transaction as the trades it covers, so a crash never skips a trade.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="feeds")
    instrument = models.OneToOneField(Instrument, on_delete=models.CASCADE, related_name="feed")
    enabled = models.BooleanField(default=True)
    cursor_trade_id = models.BigIntegerField(null=True, blank=True)
    cursor_time_ms = models.BigIntegerField(null=True, blank=True)
    cursor_token = models.CharField(max_length=64, blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True, help_text="Receive time of the newest message.")
    last_event_ms = models.BigIntegerField(null=True, blank=True, help_text="Exchange time of the newest trade.")
    last_book_at = models.DateTimeField(null=True, blank=True)
    messages = models.BigIntegerField(default=0)
    message_rate = models.FloatField(default=0.0, help_text="Messages per second over the last batch window.")
    trades_stored = models.BigIntegerField(default=0)
    duplicates = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    out_of_order = models.BigIntegerField(default=0)
    sequence_gaps = models.BigIntegerField(default=0, help_text="Book resyncs (sequence or checksum errors).")
    trade_gaps = models.BigIntegerField(default=0, help_text="Trade id jumps in a stream, backfilled over REST.")
    backfills = models.BigIntegerField(default=0)
    unfillable_gaps = models.BigIntegerField(default=0, help_text="REST could not reach back far enough.")
    stream_errors = models.BigIntegerField(default=0)
    connected = models.BooleanField(default=False)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["source__slug", "instrument__symbol"]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.instrument_id}"

    @property
    def last_event_at(self) -> datetime | None:
        return ms_to_dt(self.last_event_ms) if self.last_event_ms else None
