from django.conf import settings
from django.db import models

from apps.markets.models import Instrument


class WatchlistQuerySet(models.QuerySet):
    def owned_by(self, user):
        return self.filter(user=user)


class Watchlist(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watchlists")
    name = models.CharField(max_length=80)
    is_default = models.BooleanField(default=False)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WatchlistQuerySet.as_manager()

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="watchlist_unique_name_per_user"),
            models.UniqueConstraint(fields=["user"], condition=models.Q(is_default=True),
                                    name="watchlist_one_default_per_user"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("watchlists:detail", args=[self.pk])


class WatchlistItem(models.Model):
    """An instrument (market data) or an asset such as BTC (on-chain flows) on a watchlist."""

    watchlist = models.ForeignKey(Watchlist, on_delete=models.CASCADE, related_name="items")
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="watchlist_items")
    asset = models.CharField(max_length=16, blank=True, help_text="For exchange-flow metrics, e.g. BTC.")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["watchlist", "instrument"], condition=models.Q(instrument__isnull=False),
                                    name="watchlist_item_unique_instrument"),
            models.UniqueConstraint(fields=["watchlist", "asset"], condition=~models.Q(asset=""),
                                    name="watchlist_item_unique_asset"),
            models.CheckConstraint(
                condition=(models.Q(instrument__isnull=False) & models.Q(asset=""))
                | (models.Q(instrument__isnull=True) & ~models.Q(asset="")),
                name="watchlist_item_instrument_xor_asset",
            ),
        ]

    def __str__(self) -> str:
        return str(self.instrument) if self.instrument_id else self.asset
