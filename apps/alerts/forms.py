from datetime import timedelta

from django import forms

from apps.alerts.metrics import EVENT_THRESHOLD, METRICS, REGIME_LEVELS, REGIMES, Metric, format_number, to_shown
from apps.alerts.metrics import to_stored as metric_to_stored
from apps.alerts.models import AlertRule
from apps.markets.models import Instrument
from apps.markets.naming import instrument_full_name
from apps.watchlists.models import Watchlist


class AlertRuleForm(forms.ModelForm):
    """Thresholds are typed in the unit the pages show (a taker sell ratio in %) and stored as the data holds them.

    The browser shows only the fields that apply to the chosen scope and metric (static/js/alert_form.js); this
    form checks everything again, so a rule that could never fire, or would fire on every bar, is not saved.
    """

    threshold = forms.DecimalField(required=False, label="Threshold")
    level = forms.ChoiceField(required=False, choices=[("", "---------"), *REGIME_LEVELS], label="Regime level",
                              help_text="The instrument's own calibrated thresholds for the index.")
    rearm_level = forms.DecimalField(required=False, label="Re-arm level (optional)",
                                     help_text="Fires again only after the metric came back past this level; "
                                               "empty: the threshold itself.")
    cooldown_minutes = forms.IntegerField(min_value=0, max_value=7 * 24 * 60, initial=240, label="Cooldown (minutes)",
                                          help_text="After firing, the rule waits this long before it may fire again.")

    class Meta:
        model = AlertRule
        fields = ["name", "scope", "instrument", "watchlist", "asset", "metric", "comparator", "threshold",
                  "rearm_level", "interval", "quiet_start", "quiet_end", "enabled", "deliver_email",
                  "deliver_inpage", "daily_digest"]
        labels = {"name": "Name (optional)", "scope": "Watch", "metric": "Metric", "comparator": "Fires when it",
                  "interval": "Bars", "deliver_inpage": "Live notification on the site",
                  "deliver_email": "Email", "quiet_start": "Quiet hours from", "quiet_end": "Quiet hours until"}
        # Text, not type=time: browsers show a time input on the 12-hour clock in English locales.
        widgets = {name: forms.TimeInput(format="%H:%M", attrs={"placeholder": "HH:MM", "inputmode": "numeric",
                                                                "pattern": "[0-2][0-9]:[0-5][0-9]", "size": 6})
                   for name in ("quiet_start", "quiet_end")}

    field_order = ["name", "scope", "instrument", "watchlist", "asset", "metric", "comparator", "threshold", "level",
                   "rearm_level", "interval", "cooldown_minutes", "quiet_start", "quiet_end", "enabled",
                   "deliver_email", "daily_digest", "deliver_inpage"]

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        # Only the user's own watchlists can be chosen: another user's list is not a valid choice.
        self.fields["watchlist"].queryset = Watchlist.objects.owned_by(user)
        self.fields["instrument"].queryset = Instrument.objects.active().with_exchange()
        self.fields["instrument"].label_from_instance = instrument_full_name
        self.fields["metric"].choices = [
            (k, m.label if m.available else f"{m.label} (needs a data source not collected yet)")
            for k, m in METRICS.items()
        ]
        self.fields["asset"].help_text = "e.g. BTC, ETH, USDT"
        self.fields["quiet_start"].help_text = f"In your time zone ({user.time_zone}), 24-hour clock; no emails then."
        if self.instance.pk:
            self.initial["cooldown_minutes"] = int(self.instance.cooldown.total_seconds() // 60)
            metric = METRICS[self.instance.metric]
            if metric.levels:
                self.initial["level"] = REGIMES[round(self.instance.threshold)]
            shown = {f: getattr(self.instance, f) for f in ("threshold", "rearm_level")}
            for field, value in shown.items():
                self.initial[field] = None if value is None or not metric.needs_threshold else to_shown(value, metric)
        elif not self.is_bound:
            metric = METRICS.get(self.initial.get("metric") or "", METRICS["spi"])
            self.initial.setdefault("threshold", metric.default)
            self.initial.setdefault("comparator", metric.default_comparator)
            self.initial.setdefault("level", "high")

    def client_config(self) -> dict:
        """What the browser needs to show only the fields that apply: each metric's unit, range and default."""
        return {
            "metrics": {k: {"scope": m.scope, "unit": m.unit, "min": m.minimum, "max": m.maximum, "step": m.step,
                            "default": m.default, "comparator": m.default_comparator,
                            "needsThreshold": m.needs_threshold, "levels": m.levels, "perpOnly": m.perp_only,
                            "explain": m.explain, "range": m.range_text} for k, m in METRICS.items()},
            "kinds": {str(i.pk): i.kind for i in self.fields["instrument"].queryset},
        }

    def clean(self):
        data = super().clean()
        scope = data.get("scope")
        if scope == AlertRule.Scope.INSTRUMENT and not data.get("instrument"):
            self.add_error("instrument", "Choose the instrument this rule watches.")
        if scope == AlertRule.Scope.WATCHLIST and not data.get("watchlist"):
            self.add_error("watchlist", "Choose one of your watchlists.")
        if scope == AlertRule.Scope.ASSET and not data.get("asset"):
            self.add_error("asset", "Name the asset whose exchange flows this rule watches, e.g. BTC.")
        metric = METRICS.get(data.get("metric", ""))
        if metric is None:
            return data
        if scope:
            flows_scope = scope == AlertRule.Scope.ASSET
            if flows_scope != (metric.scope == "flows"):
                self.add_error("metric", f"{metric.label} is a {'flow' if metric.scope == 'flows' else 'market'}"
                                         f" metric; pick a matching scope.")
        instrument = data.get("instrument")
        if metric.perp_only and scope == AlertRule.Scope.INSTRUMENT and instrument and instrument.kind != "perp":
            self.add_error("metric", f"{metric.label} exists only for perpetual futures; "
                                     f"{instrument_full_name(instrument)} has none, so this rule could never fire.")
        if not metric.needs_threshold:
            # Fires when an episode is confirmed on a bar (value 1, else 0): nothing to choose.
            data.update(threshold=EVENT_THRESHOLD, comparator=AlertRule.Comparator.ABOVE, rearm_level=None)
        elif metric.levels:
            self._clean_level(data)
        else:
            self._clean_threshold(data, metric)
        if bool(data.get("quiet_start")) != bool(data.get("quiet_end")):
            self.add_error("quiet_end", "Give both the start and the end of quiet hours, or neither.")
        return data

    def _clean_level(self, data) -> None:
        level = data.get("level")
        if not level:
            self.add_error("level", "Choose the regime level: elevated, high or extreme.")
            return
        data.update(threshold=float(REGIMES.index(level)), rearm_level=None)

    def _clean_threshold(self, data, metric: Metric) -> None:
        threshold, rearm, comparator = data.get("threshold"), data.get("rearm_level"), data.get("comparator")
        if threshold is None:
            if "threshold" not in self.errors:
                self.add_error("threshold", f"Give a threshold in {_unit_words(metric)} ({metric.range_text}).")
            return
        errors = {"threshold": _range_error(threshold, metric, what="threshold")}
        errors["threshold"] = errors["threshold"] or _always_error(threshold, metric, comparator=comparator)
        if rearm is not None:
            errors["rearm_level"] = _range_error(rearm, metric, what="re-arm level")
            if comparator == "gte" and rearm > threshold:
                errors["rearm_level"] = "For a rising rule the re-arm level must be at or below the threshold."
            if comparator == "lte" and rearm < threshold:
                errors["rearm_level"] = "For a falling rule the re-arm level must be at or above the threshold."
        for field, message in errors.items():
            if message:
                self.add_error(field, message)
        if not any(errors.values()):
            data["threshold"] = metric_to_stored(threshold, metric)
            data["rearm_level"] = None if rearm is None else metric_to_stored(rearm, metric)

    def save(self, commit=True):
        rule = super().save(commit=False)
        rule.user = self.user
        rule.cooldown = timedelta(minutes=self.cleaned_data["cooldown_minutes"])
        if rule.scope != AlertRule.Scope.INSTRUMENT:
            rule.instrument = None
        if rule.scope != AlertRule.Scope.WATCHLIST:
            rule.watchlist = None
        if rule.scope != AlertRule.Scope.ASSET:
            rule.asset = ""
        rule.asset = rule.asset.strip().upper()
        if commit:
            rule.save()
        return rule


def _unit_words(metric: Metric) -> str:
    return {"%": "percent", "": "index points" if metric.key == "spi" else "a plain number"}.get(
        metric.unit, metric.unit)


def _range_error(value, metric: Metric, *, what: str) -> str | None:
    low = metric.minimum is not None and value < metric.minimum
    high = metric.maximum is not None and value > metric.maximum
    if not (low or high):
        return None
    return (f"{metric.label} can only be {metric.range_text}: a {what} of {format_number(value, metric)} "
            f"can never be reached.")


def _always_error(threshold, metric: Metric, *, comparator: str | None) -> str | None:
    """A rule that is true of every possible value fires on every bar: almost surely not what was meant."""
    if comparator == "gte" and metric.minimum is not None and threshold <= metric.minimum:
        return (f"{metric.label} is never below {format_number(metric.minimum, metric)}, so this rule would fire "
                f"on every bar: pick a threshold above {format_number(metric.minimum, metric)}.")
    if comparator == "lte" and metric.maximum is not None and threshold >= metric.maximum:
        return (f"{metric.label} is never above {format_number(metric.maximum, metric)}, so this rule would fire "
                f"on every bar: pick a threshold below {format_number(metric.maximum, metric)}.")
    return None
