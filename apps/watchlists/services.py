"""Writes of watchlists. Every function takes the acting user, so nobody edits another's list."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Max

from apps.markets.models import Instrument
from apps.watchlists.models import Watchlist, WatchlistItem


def watchlist_default_get_or_create(*, user) -> Watchlist:
    watchlist = Watchlist.objects.owned_by(user).filter(is_default=True).first()
    if watchlist is None:
        watchlist, _ = Watchlist.objects.get_or_create(user=user, name="My watchlist",
                                                       defaults={"is_default": True})
    return watchlist


def watchlist_create(*, user, name: str) -> Watchlist:
    position = (Watchlist.objects.owned_by(user).aggregate(m=Max("position"))["m"] or 0) + 1
    is_default = not Watchlist.objects.owned_by(user).exists()
    return Watchlist.objects.create(user=user, name=name.strip(), position=position, is_default=is_default)


def watchlist_rename(*, watchlist: Watchlist, name: str) -> Watchlist:
    watchlist.name = name.strip()
    watchlist.save(update_fields=["name"])
    return watchlist


@transaction.atomic
def watchlist_make_default(*, watchlist: Watchlist) -> None:
    Watchlist.objects.owned_by(watchlist.user).filter(is_default=True).update(is_default=False)
    Watchlist.objects.filter(pk=watchlist.pk).update(is_default=True)


def watchlist_delete(*, watchlist: Watchlist) -> None:
    user, was_default = watchlist.user, watchlist.is_default
    watchlist.delete()
    if was_default:
        replacement = Watchlist.objects.owned_by(user).first()
        if replacement:
            watchlist_make_default(watchlist=replacement)


def watchlist_item_add(*, watchlist: Watchlist, instrument: Instrument | None = None, asset: str = "") -> WatchlistItem:
    position = (watchlist.items.aggregate(m=Max("position"))["m"] or 0) + 1
    lookup = {"instrument": instrument} if instrument else {"asset": asset.upper()}
    try:
        with transaction.atomic():
            item, _ = WatchlistItem.objects.get_or_create(watchlist=watchlist, **lookup,
                                                          defaults={"position": position})
    except IntegrityError:  # a double click raced itself
        item = WatchlistItem.objects.get(watchlist=watchlist, **lookup)
    return item


def watchlist_item_remove(*, item: WatchlistItem) -> None:
    item.delete()


@transaction.atomic
def watchlist_item_move(*, item: WatchlistItem, direction: int) -> None:
    """Swap with the neighbour above (-1) or below (+1)."""
    siblings = list(item.watchlist.items.order_by("position", "id"))
    index = next(i for i, s in enumerate(siblings) if s.pk == item.pk)
    other = index + direction
    if 0 <= other < len(siblings):
        siblings[index], siblings[other] = siblings[other], siblings[index]
    for position, sibling in enumerate(siblings, start=1):
        if sibling.position != position:
            WatchlistItem.objects.filter(pk=sibling.pk).update(position=position)
