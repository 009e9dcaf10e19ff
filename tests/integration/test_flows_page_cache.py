"""The flows page's cached payload: served without the database, moved on by every flow write.

Each write goes through the service the workers run, with its on-commit callbacks executed (the
version bump runs on commit, as in production), and the page must show the new data at once.
"""
# ruff: noqa: F811 - fixtures imported from tests/integration/flows/conftest.py are arguments here

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.flows import selectors, services
from apps.flows.models import ExchangeWallet, FlowBar, FlowTx
from apps.markets.services import instrument_ensure
from apps.pressure.models import PressureBar
from tests.flowserver import esplora_tx

# The flow tests' fixtures (local Esplora server, shipped labels, settings), used by name below.
from tests.integration.flows.conftest import btc_wallets, flow_settings, flowserver, labels  # noqa: F401
from tests.integration.flows.scenarios import BTC, TIP, USERS, basic_history

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
PAGE = {"asset": "BTC", "range": "24h"}


@pytest.fixture
def recent(flowserver, btc_wallets):
    """The basic history mined over the last few hours (12 BTC of final inflow, 1 BTC pending), synced."""
    history = basic_history(btc_wallets, int(datetime.now(tz=UTC).timestamp()) - 6 * 3600)
    flowserver.state.add(*history.values())
    flowserver.state.tip = TIP
    w = btc_wallets
    for address in (w["binance"][0], w["binance"][1], w["coinbase"][0], w["kraken"][0]):
        services.btc_address_sync(wallet_id=_wallet(address).pk)
    return history


def _wallet(address: str) -> ExchangeWallet:
    return ExchangeWallet.objects.get(chain="btc", address=address)


def _page(client) -> str:
    resp = client.get(reverse("flows:page"), PAGE)
    assert resp.status_code == 200
    return resp.content.decode()


def _field(html: str, name: str) -> str:
    match = re.search(rf'data-field="{name}">([^<]*)<', html)
    assert match, f"no {name} in the page"
    return match.group(1).strip()


def _rows(html: str) -> list[dict]:
    match = re.search(r'<script id="flow-rows" type="application/json">(.*?)</script>', html, re.S)
    assert match, "no flow-rows in the page"
    return json.loads(match.group(1))


def _pending(html: str) -> list[list[str]]:
    """The pending inflow table as rows of cell texts."""
    table = re.search(r'<table class="table" id="pending-inflow">.*?<tbody>(.*?)</tbody>', html, re.S)
    if table is None:
        return []
    return [[re.sub(r"\s+", " ", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)]


def _behind_the_write_path() -> None:
    """A change no service made (so no bump): a page that still shows the old value is served from the cache."""
    FlowBar.objects.filter(chain="btc", asset="BTC", exchange="all").update(inflow=0)


def test_a_second_render_reads_nothing_from_the_database(client, recent):
    with CaptureQueriesContext(connection) as first:
        html = _page(client)
    assert _field(html, "inflow") == "12.0000 BTC"
    # Ranking, BTC bars, USDT and USDC bars, totals (2), pending, the recorded samples; no summary (only the empty
    # state shows it: it counts every stored flow).
    flows = [q["sql"] for q in first.captured_queries if 'FROM "flows_' in q["sql"]]
    assert len(flows) == 8, flows

    with CaptureQueriesContext(connection) as second:
        again = _page(client)
    assert [q["sql"] for q in second.captured_queries] == []
    assert _field(again, "inflow") == "12.0000 BTC" and _pending(again) == _pending(html)
    assert _rows(again) == _rows(html)

    _behind_the_write_path()
    assert _field(_page(client), "inflow") == "12.0000 BTC", "not served from the cache"


def test_a_new_deposit_shows_at_once(client, recent, flowserver, btc_wallets,
                                     django_capture_on_commit_callbacks):
    before = _page(client)
    assert _field(before, "inflow") == "12.0000 BTC"
    _behind_the_write_path()

    mined = int(datetime.now(tz=UTC).timestamp()) - 1800
    binance = btc_wallets["binance"][0]
    flowserver.state.add(esplora_tx("late-deposit", [(USERS[2], 5 * BTC + 1_000)], [(binance, 5 * BTC)],
                                    height=TIP - 1, block_time=mined))
    with django_capture_on_commit_callbacks(execute=True):
        services.btc_address_sync(wallet_id=_wallet(binance).pk)

    after = _page(client)
    # The service refreshed only the new hour: the other hours keep the 0 written behind its back.
    hour = selectors.iso(selectors.floor_hour(datetime.fromtimestamp(mined, tz=UTC)))
    new_bars = [r for r in _rows(after) if r["bucket_start"] == hour and r["exchange"] in ("all", "binance")]
    assert {r["exchange"]: r["inflow"] for r in new_bars} == {"all": "5", "binance": "5"}
    assert _field(after, "inflow") == "5.0000 BTC"


def test_a_new_deposit_shows_even_while_another_request_is_rebuilding(client, recent, flowserver, btc_wallets,
                                                                     django_capture_on_commit_callbacks):
    """The flows page does not catch up when its socket opens: it never gets a previous version."""
    from django.core.cache import cache

    assert _field(_page(client), "inflow") == "12.0000 BTC"
    raw = cache._cache.get_client()
    keys = [k.decode() for k in raw.scan_iter("*flows:page:*")]
    assert keys
    for key in keys:  # as if a concurrent request had started rebuilding every cached payload
        cache.add(key.split(":", 2)[2] + ":rebuild", 1, timeout=5)

    binance = btc_wallets["binance"][0]
    flowserver.state.add(esplora_tx("late-deposit", [(USERS[2], 5 * BTC + 1_000)], [(binance, 5 * BTC)],
                                    height=TIP - 1, block_time=int(datetime.now(tz=UTC).timestamp()) - 1800))
    with django_capture_on_commit_callbacks(execute=True):
        services.btc_address_sync(wallet_id=_wallet(binance).pk)
    assert _field(_page(client), "inflow") == "17.0000 BTC"


def test_a_pending_deposit_seen_in_a_block_updates_the_pending_inflow(client, recent, flowserver,
                                                                      django_capture_on_commit_callbacks):
    # 0.6 BTC unconfirmed and 0.4 BTC with one confirmation, both to binance.
    assert [row[:4] for row in _pending(_page(client))] == [["binance", "1.0000 BTC", "2", "1"]]
    txid = recent["unconfirmed"]["txid"]
    flowserver.state.confirm(txid, TIP, int(datetime.now(tz=UTC).timestamp()) - 60)
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.btc_pending_recheck()
    assert counts["waiting"] == 2  # one confirmation each: still pending, no bar touched
    (row,) = _pending(_page(client))
    assert row[:4] == ["binance", "1.0000 BTC", "2", "0"]


def test_a_new_unconfirmed_deposit_shows_as_pending_at_once(client, recent, flowserver, btc_wallets,
                                                            django_capture_on_commit_callbacks):
    assert [row[0] for row in _pending(_page(client))] == ["binance"]
    kraken = btc_wallets["kraken"][0]
    flowserver.state.add(esplora_tx("mempool-deposit", [(USERS[1], 2 * BTC + 900)], [(kraken, 2 * BTC)]))
    with django_capture_on_commit_callbacks(execute=True):
        stored = services.btc_address_sync(wallet_id=_wallet(kraken).pk).stored
    assert stored.inserted == 1 and not stored.touched  # a pending row only: no bar refreshed
    assert [row[:4] for row in _pending(_page(client))] == [["kraken", "2.0000 BTC", "1", "1"],
                                                            ["binance", "1.0000 BTC", "2", "1"]]


def test_pending_deposits_dropped_from_the_mempool_leave_the_page_at_once(client, recent, flowserver,
                                                                          django_capture_on_commit_callbacks):
    assert _pending(_page(client))
    for name in ("unconfirmed", "one_conf"):
        flowserver.state.drop(recent[name]["txid"])
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.btc_pending_recheck()
    assert counts["dropped"] == 2
    html = _page(client)
    assert _pending(html) == [] and "No pending BTC inflow" in html


def test_a_price_arriving_after_the_flows_shows_at_once(client, recent, django_capture_on_commit_callbacks):
    assert all(r["price_usd"] is None for r in _rows(_page(client)) if r["asset"] == "BTC")
    newest = FlowBar.objects.filter(asset="BTC", exchange="all").latest("bucket_start").bucket_start
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    PressureBar.objects.create(instrument=inst, interval="1h", bucket_start=newest, close=Decimal("61234.5"))
    with django_capture_on_commit_callbacks(execute=True):
        services.flow_bars_refresh(chain="btc", asset="BTC", start=newest, end=newest)
    priced = [r for r in _rows(_page(client)) if r["asset"] == "BTC" and r["bucket_start"] == selectors.iso(newest)]
    assert priced and all(r["price_usd"] == 61234.5 for r in priced)


def test_a_reserve_snapshot_shows_at_once(client, recent, django_capture_on_commit_callbacks):
    assert _field(_page(client), "reserve") == "\N{EN DASH}"  # no reserve yet
    newest = FlowBar.objects.filter(asset="BTC", exchange="all").latest("bucket_start").bucket_start
    with django_capture_on_commit_callbacks(execute=True):
        assert services.btc_reserves_snapshot(at=newest)
    reserve = FlowBar.objects.get(asset="BTC", exchange="all", bucket_start=newest).reserve
    assert reserve and _field(_page(client), "reserve") == f"{Decimal(int(reserve)) / BTC:,.2f} BTC"


def test_imported_labels_show_at_once(client, flowserver, django_capture_on_commit_callbacks):
    assert "No exchange wallets are labelled" in _page(client)
    with django_capture_on_commit_callbacks(execute=True):
        result = services.wallet_labels_import()
    html = _page(client)
    assert "No exchange wallets are labelled" not in html
    btc = ExchangeWallet.objects.filter(chain="btc", active=True).count()
    assert btc and result.by_chain["btc"] == btc
    assert f"{btc:,} BTC and" in html


# Nothing listens on port 1: every cache call is refused.
UNREACHABLE = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                           "LOCATION": "redis://127.0.0.1:1/0", "KEY_PREFIX": "pw-cache"}}


def test_the_page_renders_from_the_database_when_the_cache_is_unreachable(client, recent, caplog):
    _page(client)  # a cached payload that an unreachable cache must not serve
    FlowTx.objects.filter(txid=recent["unconfirmed"]["txid"]).delete()
    _behind_the_write_path()
    with override_settings(CACHES=UNREACHABLE), caplog.at_level(logging.WARNING, logger="apps.flows.selectors"):
        html = _page(client)
    assert _field(html, "inflow") == "0.0000 BTC"  # what the database holds now
    assert [row[:4] for row in _pending(html)] == [["binance", "0.4000 BTC", "1", "0"]]
    assert any("reading flows from the database" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("action", "active_before", "change"), [
    ("deactivate", True, -1), ("activate", False, +1), ("delete_selected", True, -1)])
def test_a_wallet_changed_in_the_admin_shows_at_once(admin_client, labels, action, active_before, change,
                                                     django_capture_on_commit_callbacks):
    wallet = ExchangeWallet.objects.filter(chain="btc").first()
    ExchangeWallet.objects.filter(pk=wallet.pk).update(active=active_before)
    btc = ExchangeWallet.objects.filter(chain="btc", active=True).count()
    assert f"{btc:,} BTC and" in _page(admin_client)
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin_client.post(reverse("admin:flows_exchangewallet_changelist"),
                                 {"action": action, "_selected_action": [wallet.pk], "post": "yes"})
    assert resp.status_code == 302
    assert f"{btc + change:,} BTC and" in _page(admin_client)


def test_a_wallet_edited_or_deleted_in_the_admin_form_shows_at_once(admin_client, labels,
                                                                   django_capture_on_commit_callbacks):
    first, second = ExchangeWallet.objects.filter(chain="btc")[:2]
    btc = ExchangeWallet.objects.filter(chain="btc", active=True).count()
    assert f"{btc:,} BTC and" in _page(admin_client)
    form = {"chain": "btc", "address": first.address, "exchange": first.exchange, "label": first.label,
            "source": first.source, "first_seen_0": "", "first_seen_1": "",  # "active" unticked
            "cursor-TOTAL_FORMS": "0", "cursor-INITIAL_FORMS": "0", "cursor-MIN_NUM_FORMS": "0",
            "cursor-MAX_NUM_FORMS": "1"}
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin_client.post(reverse("admin:flows_exchangewallet_change", args=[first.pk]), form)
    assert resp.status_code == 302, resp.content.decode()[-2000:]
    assert f"{btc - 1:,} BTC and" in _page(admin_client)
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin_client.post(reverse("admin:flows_exchangewallet_delete", args=[second.pk]), {"post": "yes"})
    assert resp.status_code == 302
    assert f"{btc - 2:,} BTC and" in _page(admin_client)


def _figure(html: str) -> dict:
    match = re.search(r'<script id="figure-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, "no figure-data in the page"
    return json.loads(json.loads(match.group(1)))


def test_each_theme_gets_its_own_cached_figure(client, recent):
    dark = _page(client)
    client.cookies["theme"] = "light"
    light = _page(client)
    assert _figure(dark)["layout"]["paper_bgcolor"] != _figure(light)["layout"]["paper_bgcolor"]
    assert _rows(dark) == _rows(light)
    client.cookies["theme"] = "dark"
    assert _figure(_page(client)) == _figure(dark)
