from django.contrib import admin

from apps.derivatives.models import FundingRate, Liquidation, OpenInterest, OptionIV, TakerRatio, VolIndex


@admin.register(FundingRate)
class FundingRateAdmin(admin.ModelAdmin):
    list_display = ("instrument", "time_ms", "rate", "next_funding_ms")
    list_filter = ("instrument",)


@admin.register(OpenInterest)
class OpenInterestAdmin(admin.ModelAdmin):
    list_display = ("instrument", "time_ms", "oi_base", "oi_usd")
    list_filter = ("instrument",)


@admin.register(Liquidation)
class LiquidationAdmin(admin.ModelAdmin):
    list_display = ("instrument", "time_ms", "side", "price", "qty", "notional", "sampled")
    list_filter = ("instrument", "side", "sampled")


@admin.register(TakerRatio)
class TakerRatioAdmin(admin.ModelAdmin):
    list_display = ("instrument", "time_ms", "period", "buy_vol", "sell_vol", "ratio")
    list_filter = ("instrument", "period")


@admin.register(VolIndex)
class VolIndexAdmin(admin.ModelAdmin):
    list_display = ("currency", "time_ms", "dvol")
    list_filter = ("currency",)


@admin.register(OptionIV)
class OptionIVAdmin(admin.ModelAdmin):
    list_display = ("currency", "time_ms", "atm_iv", "expiry_ms", "underlying_price")
    list_filter = ("currency",)
