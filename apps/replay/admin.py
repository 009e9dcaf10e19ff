from django.contrib import admin

from apps.replay.models import ReplayStream


@admin.register(ReplayStream)
class ReplayStreamAdmin(admin.ModelAdmin):
    list_display = ("name", "instrument", "enabled", "anchor_ms", "clock_ms", "updated_at")
    list_filter = ("enabled",)
