from django.contrib import admin

from apps.alerts.models import AlertEvent, AlertRule, AlertRuleState


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "user", "metric", "comparator", "threshold", "interval", "enabled", "created_at")
    list_filter = ("enabled", "metric", "scope", "interval")
    search_fields = ("name", "user__email")
    raw_id_fields = ("instrument", "watchlist", "user")


@admin.register(AlertRuleState)
class AlertRuleStateAdmin(admin.ModelAdmin):
    list_display = ("rule", "instrument", "armed", "last_value", "last_fired_at")
    list_filter = ("armed",)


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    list_display = ("rule", "instrument", "bucket_start", "value", "threshold", "email_status", "attempts", "sent_at")
    list_filter = ("email_status",)
    date_hierarchy = "created_at"
