from django.contrib import admin

from apps.pressure.models import PressureBar


@admin.register(PressureBar)
class PressureBarAdmin(admin.ModelAdmin):
    list_display = ("instrument", "interval", "bucket_start", "close", "trades", "taker_sell_ratio", "delta_base",
                    "spread_bps", "imbalance_0_5pct", "book_samples")
    list_filter = ("interval", "instrument")
    list_select_related = ("instrument__exchange",)
    date_hierarchy = "bucket_start"
    ordering = ("-bucket_start",)
    show_full_result_count = False
