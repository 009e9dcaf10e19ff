from datetime import timedelta

from django.db import models

from apps.markets.fields import ExactDecimalField
from apps.markets.models import Instrument

INTERVALS = {"1m": timedelta(minutes=1), "5m": timedelta(minutes=5), "1h": timedelta(hours=1)}


class PressureBarQuerySet(models.QuerySet):
    def for_instrument(self, instrument):
        return self.filter(instrument=instrument)

    def of_interval(self, interval: str):
        return self.filter(interval=interval)

    def between(self, start, end):
        return self.filter(bucket_start__gte=start, bucket_start__lt=end)

    def chronological(self):
        return self.order_by("bucket_start")


class PressureBar(models.Model):
    """Selling-pressure bar of one instrument, bucketed by exchange event time (UTC).

    Definitions: a trade is a taker sell when the aggressor sold (Binance m=true);
    taker_sell_ratio = sell / (buy + sell) in base; delta = buy - sell (base);
    spread_bps = (ask - bid) / mid * 10,000 averaged over book samples; imbalance in band b
    = (bid depth - ask depth) / (bid depth + ask depth) within b% of mid, averaged.
    CVD is not stored: it is the running sum of delta from the start of the range asked for.
    """

    class Interval(models.TextChoices):
        M1 = "1m", "1 minute"
        M5 = "5m", "5 minutes"
        H1 = "1h", "1 hour"

    class Source(models.TextChoices):
        TRADES = "trades", "Built from trades and book samples"
        KLINES = "klines", "Imported exchange klines (no book fields, no trade-level inputs)"

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="bars")
    interval = models.CharField(max_length=3, choices=Interval.choices)
    bucket_start = models.DateTimeField()
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.TRADES)
    # Final once the bucket has ended and the grace for late trades (BAR_FINAL_GRACE_MS) has passed:
    # regimes, episodes, alerts and the headline act on final bars only; the forming bar is provisional.
    final = models.BooleanField(default=False)
    open = models.DecimalField(max_digits=24, decimal_places=10, null=True)
    high = models.DecimalField(max_digits=24, decimal_places=10, null=True)
    low = models.DecimalField(max_digits=24, decimal_places=10, null=True)
    close = models.DecimalField(max_digits=24, decimal_places=10, null=True)
    # 12 significant digits at any price (apps.pressure.bars.VWAP_DIGITS), down to prices of 1e-10.
    vwap = models.DecimalField(max_digits=34, decimal_places=22, null=True)
    trades = models.PositiveIntegerField(default=0)
    taker_buy_base = ExactDecimalField(max_digits=38, decimal_places=12, default=0)
    taker_sell_base = ExactDecimalField(max_digits=38, decimal_places=12, default=0)
    taker_buy_quote = ExactDecimalField(max_digits=40, decimal_places=20, default=0)
    taker_sell_quote = ExactDecimalField(max_digits=40, decimal_places=20, default=0)
    delta_base = ExactDecimalField(max_digits=38, decimal_places=12, default=0)
    taker_sell_ratio = models.FloatField(null=True)
    spread_bps = models.FloatField(null=True)
    imbalance_0_1pct = models.FloatField(null=True)
    imbalance_0_5pct = models.FloatField(null=True)
    imbalance_1pct = models.FloatField(null=True)
    imbalance_2pct = models.FloatField(null=True)
    book_samples = models.PositiveIntegerField(default=0)
    # Inputs of the Selling Pressure Index that need trade- or quote-level data, kept per bar.
    buy_trades = models.PositiveIntegerField(default=0)
    sell_trades = models.PositiveIntegerField(default=0)
    large_trade_sell_share = models.FloatField(null=True)
    # The share's two sums, so a bar can grow by the trades of one batch without re-reading the minute.
    large_trade_base = models.FloatField(default=0.0, help_text="Base volume of large trades (both sides).")
    large_trade_sell_base = models.FloatField(default=0.0, help_text="Base volume of large taker sells.")
    ofi = models.FloatField(null=True, help_text="Order flow imbalance (Cont, Kukanov, Stoikov), base units.")
    bid_depth_0_5pct = models.FloatField(null=True, help_text="Mean bid depth within 0.5% of mid, quote currency.")
    # The index itself (1m bars): value, regime, and per component {value, z, weight, contribution}.
    spi = models.FloatField(null=True)
    regime = models.CharField(max_length=10, blank=True)
    spi_components = models.JSONField(default=dict, blank=True)
    spi_missing = models.JSONField(default=list, blank=True)
    # Probability that the price falls by the drop-risk target within its horizon, from the model version
    # named beside it (final bars only).
    drop_risk = models.FloatField(null=True)
    drop_risk_model = models.CharField(max_length=40, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PressureBarQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["instrument", "interval", "bucket_start"], name="pressurebar_unique_bucket"
            ),
        ]
        indexes = [
            models.Index(fields=["instrument", "interval", "-bucket_start"], name="bar_latest"),
            # The few bars not final yet, found without walking the history (bars_finalize).
            models.Index(fields=["instrument", "interval", "bucket_start"], condition=models.Q(final=False),
                         name="bar_not_final"),
            # The headline's bar (the newest final bar with an index) in one step, also where the newest bars
            # have none (bars imported with --no-index, a market still gathering its index window).
            models.Index(fields=["instrument", "interval", "-bucket_start"],
                         condition=models.Q(final=True, spi__isnull=False), name="bar_latest_final_spi"),
        ]

    def __str__(self) -> str:
        return f"{self.instrument} {self.interval} {self.bucket_start:%Y-%m-%d %H:%M} UTC"


class EpisodeQuerySet(models.QuerySet):
    def for_instrument(self, instrument):
        return self.filter(instrument=instrument)

    def overlapping(self, start, end):
        return self.filter(start__lt=end).filter(models.Q(end__isnull=True) | models.Q(end__gte=start))


class Episode(models.Model):
    """A selling-pressure episode on one bar interval: the final SPI stayed in the instrument's high regime
    long enough to confirm it, and has not yet stayed below elevated long enough to end it
    (apps.pressure.indicators.episodes)."""

    class Source(models.TextChoices):
        DELEVERAGING = "deleveraging", "Deleveraging"
        PROFIT_TAKING = "profit-taking", "Profit-taking / distribution"
        EVENT_SHOCK = "event-shock", "Event shock"
        MIXED = "mixed", "Mixed"

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="episodes")
    interval = models.CharField(max_length=3, choices=PressureBar.Interval.choices, default="1m")
    start = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, help_text="Start of the final bar that confirmed the episode.")
    peak_time = models.DateTimeField()
    peak_spi = models.FloatField()
    end = models.DateTimeField(null=True, blank=True, help_text="Empty while the episode is still going on.")
    bars = models.PositiveIntegerField()
    drawdown = models.FloatField(help_text="Largest peak-to-trough fall of the close during the episode, 0-1.")
    source = models.CharField(max_length=16, choices=Source.choices)
    shares = models.JSONField(default=dict, help_text="Share of positive contributions per source group.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = EpisodeQuerySet.as_manager()

    class Meta:
        ordering = ["-start"]
        constraints = [models.UniqueConstraint(fields=["instrument", "interval", "start"], name="episode_unique_start")]

    def __str__(self) -> str:
        return f"{self.instrument} {self.start:%Y-%m-%d %H:%M} UTC {self.source}"

    @property
    def is_open(self) -> bool:
        return self.end is None


class RegimeCalibration(models.Model):
    """The regime thresholds of one instrument and interval for one UTC day: percentiles of its final index
    values over the trailing window before that day (defaults while too few exist)."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="regime_calibrations")
    interval = models.CharField(max_length=3, choices=PressureBar.Interval.choices)
    day = models.DateTimeField(help_text="Start of the UTC day these thresholds apply to.")
    elevated = models.FloatField()
    high = models.FloatField()
    extreme = models.FloatField()
    bars = models.PositiveIntegerField(help_text="Final index values the thresholds rest on (0: defaults).")
    is_default = models.BooleanField(default=False)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["instrument", "interval", "day"],
                                               name="regimecalibration_unique_day")]

    def __str__(self) -> str:
        return f"{self.instrument} {self.interval} {self.day:%Y-%m-%d}"

    @property
    def thresholds(self) -> tuple[float, float, float]:
        return (self.elevated, self.high, self.extreme)


class ForecastModel(models.Model):
    """A fitted drop-risk model (apps.pressure.forecast), refit walk-forward: from the final bars before
    ``train_end`` only. Predictions name its version."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="forecast_models")
    interval = models.CharField(max_length=3, choices=PressureBar.Interval.choices)
    horizon_minutes = models.PositiveSmallIntegerField()
    drop_pct = models.FloatField()
    train_end = models.DateTimeField(help_text="Fitted on bars whose whole horizon ended before this.")
    version = models.CharField(max_length=40)
    base_rate = models.FloatField(help_text="Share of training bars followed by the drop.")
    params = models.TextField(help_text="The fitted model as JSON (plain coefficients).")
    fitted_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["instrument", "interval", "horizon_minutes", "drop_pct",
                                                       "train_end"], name="forecastmodel_unique_fit")]

    def __str__(self) -> str:
        return f"{self.instrument} {self.interval} {self.version}"


class TrackRecord(models.Model):
    """A walk-forward evaluation of the index, its regimes, the drop-risk forecast and the baselines over an
    instrument's final bars (apps.pressure.track_record), stored for the pages."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="track_records")
    interval = models.CharField(max_length=3, choices=PressureBar.Interval.choices)
    horizon_minutes = models.PositiveSmallIntegerField()
    drop_pct = models.FloatField()
    start = models.DateTimeField()
    end = models.DateTimeField()
    result = models.JSONField(help_text="bars, events, base_rate, signals, curves, timeline")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["instrument", "interval", "horizon_minutes", "drop_pct"],
                                               name="trackrecord_unique_spec")]

    def __str__(self) -> str:
        return f"{self.instrument} {self.interval} H={self.horizon_minutes} X={self.drop_pct}"
