from datetime import timedelta

from django.conf import settings
from django.db import models

from apps.alerts.metrics import METRICS, format_value, metric_choices
from apps.markets.models import Instrument
from apps.markets.naming import instrument_full_name
from apps.pressure.models import PressureBar
from apps.watchlists.models import Watchlist


class AlertRule(models.Model):
    class Scope(models.TextChoices):
        INSTRUMENT = "instrument", "One instrument"
        WATCHLIST = "watchlist", "Every instrument on a watchlist"
        ASSET = "asset", "One asset's exchange flows"

    class Comparator(models.TextChoices):
        ABOVE = "gte", "rises to or above"
        BELOW = "lte", "falls to or below"

    Interval = PressureBar.Interval  # a rule reads the bars of one of their intervals

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=120, blank=True)
    scope = models.CharField(max_length=12, choices=Scope.choices, default=Scope.INSTRUMENT)
    instrument = models.ForeignKey(Instrument, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    watchlist = models.ForeignKey(Watchlist, null=True, blank=True, on_delete=models.CASCADE, related_name="rules")
    asset = models.CharField(max_length=16, blank=True)
    metric = models.CharField(max_length=32, choices=metric_choices)
    comparator = models.CharField(max_length=3, choices=Comparator.choices, default=Comparator.ABOVE)
    threshold = models.FloatField()
    rearm_level = models.FloatField(null=True, blank=True,
                                    help_text="Fires again only after the metric came back past this level.")
    interval = models.CharField(max_length=3, choices=Interval.choices, default=Interval.M1)
    cooldown = models.DurationField(default=timedelta(hours=4))
    quiet_start = models.TimeField(null=True, blank=True, help_text="In your time zone.")
    quiet_end = models.TimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    deliver_email = models.BooleanField(default=True)
    deliver_inpage = models.BooleanField(default=True)
    daily_digest = models.BooleanField(default=False, help_text="Group emails into one a day instead of one each.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(scope="instrument", instrument__isnull=False)
                           | models.Q(scope="watchlist", watchlist__isnull=False)
                           | (models.Q(scope="asset") & ~models.Q(asset=""))),
                name="alertrule_scope_has_target",
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.condition()

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("alerts:edit", args=[self.pk])

    @property
    def effective_rearm_level(self) -> float:
        return self.threshold if self.rearm_level is None else self.rearm_level

    @property
    def target(self) -> str:
        if self.scope == self.Scope.INSTRUMENT and self.instrument_id:
            return instrument_full_name(self.instrument)
        if self.scope == self.Scope.WATCHLIST and self.watchlist_id:
            return f"watchlist “{self.watchlist.name}”"
        return f"{self.asset} exchange flows"

    def condition(self) -> str:
        """What fires the rule, as a sentence: "BTCUSDT perp · Binance: SPI rises to or above 70 on 1m bars"."""
        metric = METRICS[self.metric]
        if not metric.needs_threshold:
            what = f"a {metric.noun} starts"
        elif metric.levels:
            level = format_value(self.threshold, metric)
            what = (f"{metric.noun} reaches {level} or above" if self.comparator == self.Comparator.ABOVE
                    else f"{metric.noun} falls to {level} or below")
        else:
            what = f"{metric.noun} {self.get_comparator_display()} {format_value(self.threshold, metric)}"
        return f"{self.target}: {what} on {self.interval} bars"

    def delivery_text(self) -> str:
        ways = []
        if self.deliver_email:
            ways.append("daily email digest" if self.daily_digest else "email")
        if self.deliver_inpage:
            ways.append("live")
        return " + ".join(ways) or "no delivery (history only)"

    def describe(self) -> str:
        """The whole rule in one line, as the rules list shows it."""
        return f"{self.condition()}, {self.delivery_text()}, cooldown {duration_text(self.cooldown)}"


def duration_text(duration: timedelta) -> str:
    """4 h, 90 min, 1 d 2 h, none."""
    minutes = int(duration.total_seconds() // 60)
    if minutes <= 0:
        return "none"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if not days and not hours:
        return f"{mins} min"
    parts = [f"{days} d"] if days else []
    parts += [f"{hours} h"] if hours else []
    parts += [f"{mins} min"] if mins else []
    return " ".join(parts)


class AlertRuleState(models.Model):
    """Hysteresis and cooldown per rule and instrument (a watchlist rule tracks each one)."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="states")
    instrument = models.ForeignKey(Instrument, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    armed = models.BooleanField(default=True)
    last_value = models.FloatField(null=True, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "instrument"], name="alertrulestate_unique")]

    def __str__(self) -> str:
        return f"{self.rule_id}/{self.instrument_id} {'armed' if self.armed else 'fired'}"


class AlertEvent(models.Model):
    class Email(models.TextChoices):
        PENDING = "pending", "queued"
        SENDING = "sending", "sending"
        RETRYING = "retrying", "retrying"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"
        DIGEST = "digest", "waiting for the daily digest"
        SKIPPED = "skipped", "not emailed"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="events")
    instrument = models.ForeignKey(Instrument, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    bucket_start = models.DateTimeField(help_text="The bar that fired the rule.")
    value = models.FloatField()
    threshold = models.FloatField()
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    email_status = models.CharField(max_length=10, choices=Email.choices, default=Email.PENDING)
    email_note = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "instrument", "bucket_start"], name="alertevent_unique_per_bar"),
        ]
        indexes = [models.Index(fields=["email_status", "created_at"], name="alertevent_status")]

    def __str__(self) -> str:
        return f"{self.rule} @ {self.bucket_start:%Y-%m-%d %H:%M} UTC"
