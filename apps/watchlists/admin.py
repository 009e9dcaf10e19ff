from django.contrib import admin

from apps.watchlists.models import Watchlist, WatchlistItem


class WatchlistItemInline(admin.TabularInline):
    model = WatchlistItem
    extra = 0
    raw_id_fields = ("instrument",)


@admin.register(Watchlist)
class WatchlistAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "is_default", "position", "created_at")
    list_filter = ("is_default",)
    search_fields = ("name", "user__email")
    inlines = [WatchlistItemInline]
