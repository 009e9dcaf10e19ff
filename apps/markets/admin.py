from django.contrib import admin

from apps.markets.models import BookSample, Exchange, Instrument, SourceStatus, Trade


@admin.register(Exchange)
class ExchangeAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "is_replay")
    list_filter = ("is_replay",)


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = ("symbol", "exchange", "market", "kind", "base", "quote", "price_decimals", "qty_decimals", "active")
    list_filter = ("exchange", "market", "kind", "active")
    search_fields = ("symbol", "base", "quote")


@admin.register(Trade)
class TradeAdmin(admin.ModelAdmin):
    list_display = ("trade_id", "instrument", "time", "price", "qty", "taker_sell")
    list_filter = ("instrument", "taker_sell")
    list_select_related = ("instrument__exchange",)
    ordering = ("-time_ms",)
    show_full_result_count = False


@admin.register(BookSample)
class BookSampleAdmin(admin.ModelAdmin):
    list_display = ("instrument", "time", "bid_price", "ask_price", "bid_depth_1pct", "ask_depth_1pct")
    list_filter = ("instrument",)
    list_select_related = ("instrument__exchange",)
    ordering = ("-time_ms",)
    show_full_result_count = False


@admin.register(SourceStatus)
class SourceStatusAdmin(admin.ModelAdmin):
    list_display = ("name", "last_ingest_at", "trades_inserted", "duplicates", "rejected", "sequence_gaps", "errors")
    readonly_fields = ("last_ingest_at",)
