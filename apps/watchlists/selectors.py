from __future__ import annotations

from django.shortcuts import get_object_or_404

from apps.markets.models import Instrument
from apps.pressure.selectors import latest_bars
from apps.watchlists.models import Watchlist, WatchlistItem


def watchlist_get_for_user(*, user, pk: int) -> Watchlist:
    """The user's own watchlist, or 404: another user's list does not exist for them."""
    return get_object_or_404(Watchlist.objects.owned_by(user), pk=pk)


def watchlist_item_get_for_user(*, user, pk: int) -> WatchlistItem:
    return get_object_or_404(WatchlistItem.objects.select_related("watchlist"), pk=pk, watchlist__user=user)


def watchlists_for_user(*, user):
    return Watchlist.objects.owned_by(user).prefetch_related("items__instrument__exchange")


def watched_instrument_ids() -> set[int]:
    """The union of every user's watchlists: what the collector must ingest."""
    return set(WatchlistItem.objects.exclude(instrument=None).values_list("instrument_id", flat=True).distinct())


def watchlists_containing(*, user, instrument: Instrument) -> set[int]:
    return set(WatchlistItem.objects.filter(watchlist__user=user, instrument=instrument)
               .values_list("watchlist_id", flat=True))


def heatmap_rows(*, watchlist: Watchlist) -> list[dict]:
    """Each item with its instrument's latest 1m bar and its asset's latest exchange-flow bar."""
    from apps.derivatives.models import FundingRate
    from apps.flows.selectors import ASSET_CHAIN, flow_bar_latest, flow_bar_serialize

    items = list(watchlist.items.select_related("instrument__exchange"))
    bars = latest_bars(instrument_ids=[i.instrument_id for i in items if i.instrument_id])
    flows: dict[str, object] = {}
    rows = []
    for item in items:
        asset = (item.instrument.base if item.instrument_id else item.asset).upper()
        if asset not in flows:
            bar = flow_bar_latest(asset=asset) if asset in ASSET_CHAIN else None
            flows[asset] = flow_bar_serialize(bar) if bar else None
        funding = None
        if item.instrument_id and item.instrument.kind == "perp":
            funding = (FundingRate.objects.filter(instrument_id=item.instrument_id).order_by("-time_ms")
                       .values_list("rate", flat=True).first())
        rows.append({"item": item, "bar": bars.get(item.instrument_id), "flow": flows[asset], "funding": funding})
    return rows
