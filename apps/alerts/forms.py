from datetime import timedelta

from django import forms

from apps.alerts.metrics import METRICS
from apps.alerts.models import AlertRule
from apps.markets.models import Instrument
from apps.watchlists.models import Watchlist


class AlertRuleForm(forms.ModelForm):
    cooldown_minutes = forms.IntegerField(min_value=0, max_value=7 * 24 * 60, initial=240,
                                          help_text="Minutes after firing before this rule may fire again.")

    class Meta:
        model = AlertRule
        fields = ["name", "scope", "instrument", "watchlist", "asset", "metric", "comparator", "threshold",
                  "rearm_level", "interval", "quiet_start", "quiet_end", "enabled", "deliver_email",
                  "deliver_inpage", "daily_digest"]
        widgets = {"quiet_start": forms.TimeInput(attrs={"type": "time"}),
                   "quiet_end": forms.TimeInput(attrs={"type": "time"})}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        # Only the user's own watchlists can be chosen: another user's list is not a valid choice.
        self.fields["watchlist"].queryset = Watchlist.objects.owned_by(user)
        self.fields["instrument"].queryset = Instrument.objects.active().with_exchange()
        self.fields["metric"].choices = [
            (k, m.label if m.available else f"{m.label} (needs a data source not collected yet)")
            for k, m in METRICS.items()
        ]
        if self.instance.pk:
            self.fields["cooldown_minutes"].initial = int(self.instance.cooldown.total_seconds() // 60)

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
        if metric and scope:
            flows_scope = scope == AlertRule.Scope.ASSET
            if flows_scope != (metric.scope == "flows"):
                self.add_error("metric", f"{metric.label} is a {'flow' if metric.scope == 'flows' else 'market'}"
                                         f" metric; pick a matching scope.")
        threshold, rearm = data.get("threshold"), data.get("rearm_level")
        if threshold is not None and rearm is not None:
            if data.get("comparator") == "gte" and rearm > threshold:
                self.add_error("rearm_level", "For a rising rule the re-arm level must be at or below the threshold.")
            if data.get("comparator") == "lte" and rearm < threshold:
                self.add_error("rearm_level", "For a falling rule the re-arm level must be at or above the threshold.")
        if bool(data.get("quiet_start")) != bool(data.get("quiet_end")):
            self.add_error("quiet_end", "Give both the start and the end of quiet hours, or neither.")
        return data

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
        if commit:
            rule.save()
        return rule
