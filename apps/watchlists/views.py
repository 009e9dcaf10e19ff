from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.markets.models import Instrument
from apps.markets.naming import instrument_full_name
from apps.watchlists import selectors, services
from apps.watchlists.forms import ItemAddForm, WatchlistForm


def _next(request, fallback: str) -> str:
    target = request.POST.get("next") or fallback
    allowed = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                              require_https=request.is_secure())
    return target if allowed else fallback


@login_required
def index(request):
    watchlists = list(selectors.watchlists_for_user(user=request.user))
    return render(request, "watchlists/index.html", {"watchlists": watchlists, "form": WatchlistForm()})


@login_required
def detail(request, pk):
    watchlist = selectors.watchlist_get_for_user(user=request.user, pk=pk)
    return render(request, "watchlists/detail.html", {
        "watchlist": watchlist, "rows": selectors.heatmap_rows(watchlist=watchlist),
        "watchlists": selectors.watchlists_for_user(user=request.user),
    })


@login_required
@require_POST
def create(request):
    form = WatchlistForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A watchlist needs a name of at most 80 characters.")
        return redirect("watchlists:index")
    if selectors.watchlists_for_user(user=request.user).filter(name=form.cleaned_data["name"]).exists():
        messages.error(request, f"You already have a watchlist called {form.cleaned_data['name']!r}.")
        return redirect("watchlists:index")
    watchlist = services.watchlist_create(user=request.user, name=form.cleaned_data["name"])
    return redirect(watchlist)


@login_required
@require_POST
def rename(request, pk):
    watchlist = selectors.watchlist_get_for_user(user=request.user, pk=pk)
    form = WatchlistForm(request.POST)
    if form.is_valid():
        services.watchlist_rename(watchlist=watchlist, name=form.cleaned_data["name"])
    else:
        messages.error(request, "A watchlist needs a name of at most 80 characters.")
    return redirect(watchlist)


@login_required
@require_POST
def make_default(request, pk):
    services.watchlist_make_default(watchlist=selectors.watchlist_get_for_user(user=request.user, pk=pk))
    return redirect("watchlists:index")


@login_required
@require_POST
def delete(request, pk):
    watchlist = selectors.watchlist_get_for_user(user=request.user, pk=pk)
    services.watchlist_delete(watchlist=watchlist)
    messages.success(request, f"Deleted the watchlist {watchlist.name!r}.")
    return redirect("watchlists:index")


@login_required
@require_POST
def item_add(request):
    form = ItemAddForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.non_field_errors()) or "Nothing to add.")
        return redirect(_next(request, "watchlists:index"))
    data = form.cleaned_data
    watchlist = (selectors.watchlist_get_for_user(user=request.user, pk=data["watchlist"]) if data["watchlist"]
                 else services.watchlist_default_get_or_create(user=request.user))
    instrument = get_object_or_404(Instrument, pk=data["instrument"]) if data["instrument"] else None
    services.watchlist_item_add(watchlist=watchlist, instrument=instrument, asset=data["asset"] or "")
    what = instrument_full_name(instrument) if instrument else f"{data['asset'].upper()} exchange flows"
    messages.success(request, f"Added {what} to {watchlist.name}.")
    return redirect(_next(request, watchlist.get_absolute_url()))


@login_required
@require_POST
def item_remove(request, pk):
    item = selectors.watchlist_item_get_for_user(user=request.user, pk=pk)
    services.watchlist_item_remove(item=item)
    return redirect(_next(request, item.watchlist.get_absolute_url()))


@login_required
@require_POST
def item_move(request, pk):
    item = selectors.watchlist_item_get_for_user(user=request.user, pk=pk)
    services.watchlist_item_move(item=item, direction=-1 if request.POST.get("direction") == "up" else 1)
    return redirect(item.watchlist)
