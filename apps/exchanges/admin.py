from django.contrib import admin

from apps.exchanges.models import Feed, Source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("slug", "exchange", "market", "enabled", "state", "requests", "rate_limited", "bans",
                    "server_errors", "timeouts", "last_success_at")
    list_filter = ("state", "enabled", "exchange")
    actions = ["reset_state"]

    @admin.action(description="Forget rate-limit state (after fixing the cause)")
    def reset_state(self, request, queryset):
        from apps.exchanges.services import sources_reset

        sources_reset(slugs=list(queryset.values_list("slug", flat=True)))


@admin.register(Feed)
class FeedAdmin(admin.ModelAdmin):
    list_display = ("instrument", "source", "enabled", "connected", "last_message_at", "message_rate",
                    "trades_stored", "duplicates", "rejected", "sequence_gaps", "trade_gaps", "backfills")
    list_filter = ("source", "enabled", "connected")
    list_select_related = ("instrument__exchange", "source")
