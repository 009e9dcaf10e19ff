import secrets
from datetime import UTC, datetime

from django.db import models


def trades_revision_new() -> int:
    return secrets.randbits(62)


class Exchange(models.Model):
    slug = models.SlugField(unique=True, help_text="binance, coinbase, ... or binance-replay for recorded data.")
    name = models.CharField(max_length=64)
    is_replay = models.BooleanField(
        default=False, help_text="Recorded data replayed with shifted timestamps; never mixed with live data."
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class InstrumentQuerySet(models.QuerySet):
    def active(self):
        return self.filter(active=True)

    def with_exchange(self):
        return self.select_related("exchange")


class Instrument(models.Model):
    class Kind(models.TextChoices):
        SPOT = "spot", "Spot"
        PERP = "perp", "Perpetual"

    exchange = models.ForeignKey(Exchange, on_delete=models.PROTECT, related_name="instruments")
    market = models.SlugField(max_length=16, help_text="The exchange's market: spot, usdm, swap, linear ...")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.SPOT)
    symbol = models.CharField(max_length=32)
    base = models.CharField(max_length=16)
    quote = models.CharField(max_length=16)
    # The scale of the instrument's values, widened as data arrives: decimals of its finest value and
    # integer digits of its largest. Bar math runs in exact integers at this scale; validation keeps
    # decimals + integer digits within 15 (apps.markets.validation.scale_admit).
    price_decimals = models.PositiveSmallIntegerField(default=2)
    qty_decimals = models.PositiveSmallIntegerField(default=5)
    price_int_digits = models.PositiveSmallIntegerField(default=0)
    qty_int_digits = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)
    # A fresh random value whenever stored trades change other than by appending after the newest one (a
    # late trade, pruning): what a copy of the newest trades (the live path's large-trade window) is checked
    # against. Random, so a new row never matches a copy taken of another one.
    trades_revision = models.BigIntegerField(default=trades_revision_new, editable=False)

    objects = InstrumentQuerySet.as_manager()

    class Meta:
        ordering = ["exchange__slug", "market", "symbol"]
        constraints = [
            models.UniqueConstraint(fields=["exchange", "market", "symbol"], name="instrument_unique_market_symbol"),
        ]

    def __str__(self) -> str:
        return f"{self.exchange.slug}:{self.market}:{self.symbol}"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("dashboard:instrument", args=[self.exchange.slug, self.market, self.symbol])

    @property
    def is_replay(self) -> bool:
        return self.exchange.is_replay

    @property
    def display_name(self) -> str:
        return f"{self.base}/{self.quote} {self.get_kind_display()}"


class Trade(models.Model):
    """One exchange trade. taker_sell is True when the aggressor sold (Binance: m=true)."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="trades")
    trade_id = models.BigIntegerField()
    time_ms = models.BigIntegerField(help_text="Exchange event time, ms since epoch UTC.")
    price = models.DecimalField(max_digits=24, decimal_places=10)
    qty = models.DecimalField(max_digits=28, decimal_places=10)
    taker_sell = models.BooleanField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["instrument", "trade_id"], name="trade_unique_exchange_id"),
        ]
        indexes = [models.Index(fields=["instrument", "time_ms", "trade_id"], name="trade_instrument_time")]

    def __str__(self) -> str:
        return f"{self.instrument_id}#{self.trade_id}"

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.time_ms / 1000, tz=UTC)


class BookSample(models.Model):
    """Order-book summary: top of book and quote-currency depth within bands of mid."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="book_samples")
    time_ms = models.BigIntegerField()
    bid_price = models.DecimalField(max_digits=24, decimal_places=10)
    bid_qty = models.DecimalField(max_digits=28, decimal_places=10)
    ask_price = models.DecimalField(max_digits=24, decimal_places=10)
    ask_qty = models.DecimalField(max_digits=28, decimal_places=10)
    bid_depth_0_1pct = models.FloatField()
    ask_depth_0_1pct = models.FloatField()
    bid_depth_0_5pct = models.FloatField()
    ask_depth_0_5pct = models.FloatField()
    bid_depth_1pct = models.FloatField()
    ask_depth_1pct = models.FloatField()
    bid_depth_2pct = models.FloatField()
    ask_depth_2pct = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["instrument", "time_ms"], name="booksample_unique_time"),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id}@{self.time_ms}"

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.time_ms / 1000, tz=UTC)


class SourceStatus(models.Model):
    """Counters per data source, shown on the health page."""

    name = models.CharField(max_length=64, unique=True)
    last_ingest_at = models.DateTimeField(null=True, blank=True)
    last_event_ms = models.BigIntegerField(null=True, blank=True)
    batches = models.BigIntegerField(default=0)
    trades_inserted = models.BigIntegerField(default=0)
    duplicates = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    conflicts = models.BigIntegerField(default=0, help_text="Trades whose id was stored with other contents.")
    book_samples = models.BigIntegerField(default=0)
    sequence_gaps = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "source statuses"

    def __str__(self) -> str:
        return self.name
