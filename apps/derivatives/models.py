"""Derivatives context beside the trade flow: funding, open interest, liquidations, volatility.

Every table has a unique key on what identifies a reading at the exchange, so polls that
overlap (or a worker retried after a crash) upsert instead of duplicating.
"""

from datetime import datetime

from django.db import models

from apps.markets.models import Instrument
from pressureweb.lib.times import ms_to_dt


class FundingRate(models.Model):
    """A perpetual's funding rate per funding interval (a fraction: 0.0001 = 0.01%); negative =
    shorts pay longs."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="funding_rates")
    time_ms = models.BigIntegerField(help_text="Funding time (settled) or reading time (predicted), ms UTC.")
    rate = models.DecimalField(max_digits=20, decimal_places=12)
    next_funding_ms = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["instrument", "time_ms"]
        constraints = [models.UniqueConstraint(fields=["instrument", "time_ms"], name="funding_unique_time")]

    def __str__(self) -> str:
        return f"{self.instrument_id}@{self.time_ms} {self.rate}"

    @property
    def time(self) -> datetime:
        return ms_to_dt(self.time_ms)


class OpenInterest(models.Model):
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="open_interest")
    time_ms = models.BigIntegerField()
    oi_base = models.DecimalField(max_digits=30, decimal_places=10, null=True, help_text="Base currency (coins).")
    oi_usd = models.DecimalField(max_digits=30, decimal_places=4, null=True, help_text="Quote currency (USD/USDT).")

    class Meta:
        ordering = ["instrument", "time_ms"]
        constraints = [models.UniqueConstraint(fields=["instrument", "time_ms"], name="oi_unique_time")]

    def __str__(self) -> str:
        return f"{self.instrument_id}@{self.time_ms} {self.oi_base}"


class MarkPrice(models.Model):
    """A perpetual's mark price (what the exchange values positions and liquidates at) and index price (its spot
    reference), in the quote currency, at the time the exchange sent them."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="mark_prices")
    time_ms = models.BigIntegerField()
    mark_price = models.DecimalField(max_digits=24, decimal_places=10)
    index_price = models.DecimalField(max_digits=24, decimal_places=10, null=True)

    class Meta:
        ordering = ["instrument", "time_ms"]
        constraints = [models.UniqueConstraint(fields=["instrument", "time_ms"], name="mark_unique_time")]

    def __str__(self) -> str:
        return f"{self.instrument_id}@{self.time_ms} {self.mark_price}"


class Liquidation(models.Model):
    """A forced order. ``side`` is the position that was liquidated: a SELL liquidation order
    closes a long. ``sampled``: the exchange sends a sample, not every order (Binance pushes at
    most one forceOrder per symbol per second), so sums are lower bounds."""

    class Side(models.TextChoices):
        LONG = "long", "Long liquidated"
        SHORT = "short", "Short liquidated"

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="liquidations")
    key = models.CharField(max_length=64, help_text="Exchange id, or a synthetic key of time, side, price, qty.")
    time_ms = models.BigIntegerField()
    side = models.CharField(max_length=5, choices=Side.choices)
    price = models.DecimalField(max_digits=24, decimal_places=10)
    qty = models.DecimalField(max_digits=28, decimal_places=10, help_text="Base currency.")
    notional = models.DecimalField(max_digits=30, decimal_places=8, help_text="Quote currency.")
    sampled = models.BooleanField(default=False)

    class Meta:
        ordering = ["instrument", "time_ms"]
        constraints = [models.UniqueConstraint(fields=["instrument", "key"], name="liquidation_unique_key")]
        indexes = [models.Index(fields=["instrument", "time_ms"], name="liquidation_time")]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.side} {self.qty}@{self.price}"


class TakerRatio(models.Model):
    """The exchange's own taker buy/sell volume per period (Binance futures data), shown beside ours."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="taker_ratios")
    time_ms = models.BigIntegerField()
    period = models.CharField(max_length=4, default="5m")
    buy_vol = models.DecimalField(max_digits=30, decimal_places=10)
    sell_vol = models.DecimalField(max_digits=30, decimal_places=10)
    ratio = models.DecimalField(max_digits=20, decimal_places=10)

    class Meta:
        ordering = ["instrument", "time_ms"]
        constraints = [
            models.UniqueConstraint(fields=["instrument", "period", "time_ms"], name="takerratio_unique_time"),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id}@{self.time_ms} {self.ratio}"


class CurrencyReading(models.Model):
    """A reading of a whole currency's options market (not of one instrument): one per currency and time."""

    currency = models.CharField(max_length=8)
    time_ms = models.BigIntegerField()

    class Meta:
        abstract = True
        ordering = ["currency", "time_ms"]
        constraints = [models.UniqueConstraint(fields=["currency", "time_ms"], name="%(class)s_unique_time")]


class VolIndex(CurrencyReading):
    """Deribit DVOL: 30-day implied volatility index, in annualised percent."""

    dvol = models.DecimalField(max_digits=12, decimal_places=4)

    class Meta(CurrencyReading.Meta):
        verbose_name_plural = "volatility index readings"

    def __str__(self) -> str:
        return f"DVOL {self.currency}@{self.time_ms} {self.dvol}"


class OptionIV(CurrencyReading):
    """At-the-money implied volatility (annualised percent) of the nearest listed expiry."""

    atm_iv = models.DecimalField(max_digits=12, decimal_places=4)
    expiry_ms = models.BigIntegerField()
    underlying_price = models.DecimalField(max_digits=24, decimal_places=8, null=True)

    class Meta(CurrencyReading.Meta):
        verbose_name = "option ATM IV"

    def __str__(self) -> str:
        return f"ATM IV {self.currency}@{self.time_ms} {self.atm_iv}"


class RecordedSample(models.Model):
    """Readings of an instrument loaded from a shipped recording (manage.py load_derivatives_sample), not polled.

    Its FundingRate and OpenInterest rows keep their real times in [start_ms, end_ms]: seconds of history that the
    panel names as a recorded sample and never stretches over a longer range.
    """

    instrument = models.OneToOneField(Instrument, on_delete=models.CASCADE, related_name="recorded_sample")
    venue = models.CharField(max_length=64, help_text='Who recorded what, e.g. "Bybit".')
    start_ms = models.BigIntegerField()
    end_ms = models.BigIntegerField()
    funding_readings = models.PositiveIntegerField(default=0)
    oi_readings = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=255, help_text="Where the recording and its licence are described.")

    def __str__(self) -> str:
        return f"recorded sample of {self.instrument_id} ({self.venue})"

    @property
    def start(self) -> datetime:
        return ms_to_dt(self.start_ms)

    @property
    def end(self) -> datetime:
        return ms_to_dt(self.end_ms)

    @property
    def seconds(self) -> int:
        return round((self.end_ms - self.start_ms) / 1000)
