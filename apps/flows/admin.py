from django.contrib import admin
from django.db import transaction

from apps.flows.models import AddressCursor, BlockHash, ChainCursor, ExchangeWallet, FlowBar, FlowTx, ReserveSnapshot
from apps.flows.services import flows_version_bump


class FlowsPageAdmin(admin.ModelAdmin):
    """Edits of what the flows page shows: its cached payloads move on once they commit."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        transaction.on_commit(flows_version_bump)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        transaction.on_commit(flows_version_bump)

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        transaction.on_commit(flows_version_bump)


class AddressCursorInline(admin.StackedInline):
    model = AddressCursor
    extra = 0
    readonly_fields = ("updated_at",)


def _wallets_active_set(queryset, *, active: bool) -> None:
    # Per object so updated_at moves and the cached label maps are rebuilt.
    for wallet in queryset:
        wallet.active = active
        wallet.save(update_fields=["active", "updated_at"])
    transaction.on_commit(flows_version_bump)


@admin.register(ExchangeWallet)
class ExchangeWalletAdmin(FlowsPageAdmin):
    list_display = ("address", "chain", "exchange", "label", "active", "first_seen", "source", "updated_at")
    list_filter = ("chain", "label", "active", "exchange")
    list_editable = ("label", "active")
    search_fields = ("address", "exchange", "source")
    readonly_fields = ("created_at", "updated_at")
    inlines = [AddressCursorInline]
    actions = ["activate", "deactivate"]

    @admin.action(description="Poll and use as labels")
    def activate(self, request, queryset):
        _wallets_active_set(queryset, active=True)

    @admin.action(description="Stop polling and using as labels")
    def deactivate(self, request, queryset):
        _wallets_active_set(queryset, active=False)


@admin.register(AddressCursor)
class AddressCursorAdmin(admin.ModelAdmin):
    list_display = ("wallet", "last_seen_txid", "walk_resume_txid", "tip_height_seen", "chain_tx_count",
                    "has_pending", "balance", "txs_processed", "updated_at")
    list_filter = ("wallet__chain", "has_pending")
    list_select_related = ("wallet",)
    search_fields = ("wallet__address", "wallet__exchange", "last_seen_txid")
    readonly_fields = ("updated_at",)


@admin.register(ChainCursor)
class ChainCursorAdmin(admin.ModelAdmin):
    list_display = ("chain", "height", "updated_at")
    readonly_fields = ("updated_at",)


@admin.register(BlockHash)
class BlockHashAdmin(admin.ModelAdmin):
    list_display = ("chain", "height", "hash", "time")
    list_filter = ("chain",)
    search_fields = ("hash",)
    show_full_result_count = False


@admin.register(FlowTx)
class FlowTxAdmin(FlowsPageAdmin):
    list_display = ("txid", "chain", "asset", "exchange", "counterparty", "inflow", "outflow", "internal", "fee",
                    "block_height", "block_time", "confirmed")
    list_filter = ("chain", "asset", "confirmed", "exchange_to_exchange", "exchange")
    search_fields = ("txid", "exchange", "counterparty")
    readonly_fields = ("created_at", "updated_at")
    date_hierarchy = "block_time"
    show_full_result_count = False


@admin.register(FlowBar)
class FlowBarAdmin(FlowsPageAdmin):
    list_display = ("bucket_start", "chain", "asset", "exchange", "inflow", "outflow", "netflow", "inflow_txs",
                    "outflow_txs", "whale_ratio", "netflow_z", "netflow_usd", "reserve")
    list_filter = ("chain", "asset", "interval", "exchange")
    search_fields = ("exchange",)
    readonly_fields = ("updated_at",)
    date_hierarchy = "bucket_start"
    show_full_result_count = False


@admin.register(ReserveSnapshot)
class ReserveSnapshotAdmin(admin.ModelAdmin):
    list_display = ("time", "chain", "asset", "exchange", "balance", "wallets")
    list_filter = ("chain", "asset", "exchange")
    readonly_fields = ("updated_at",)
    date_hierarchy = "time"
