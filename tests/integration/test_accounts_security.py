import re

import pytest
from allauth.account.models import EmailAddress
from channels.testing import WebsocketCommunicator
from django.core import mail
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User
from apps.alerts.models import AlertEvent, AlertRule
from apps.markets.services import instrument_ensure
from apps.watchlists import services as wl
from pressureweb.asgi import application

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple 7"


def make_user(email):
    user = User.objects.create_user(username=email.split("@")[0], email=email, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


@pytest.fixture
def world():
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="ETHUSDT", base="ETH", quote="USDT")
    alice, bob = make_user("alice@example.com"), make_user("bob@example.com")
    wl_a = wl.watchlist_create(user=alice, name="Alice's")
    item = wl.watchlist_item_add(watchlist=wl_a, instrument=inst)
    rule = AlertRule.objects.create(user=alice, scope="watchlist", watchlist=wl_a, metric="taker_sell_ratio",
                                    threshold=0.6)
    event = AlertEvent.objects.create(rule=rule, instrument=inst, bucket_start="2024-08-09T00:00:00Z", value=0.7,
                                      threshold=0.6)
    return {"inst": inst, "alice": alice, "bob": bob, "watchlist": wl_a, "item": item, "rule": rule, "event": event}


def private_urls(w):
    return {
        "get": [reverse("watchlists:detail", args=[w["watchlist"].pk]), reverse("alerts:edit", args=[w["rule"].pk]),
                reverse("alerts:event", args=[w["event"].pk])],
        "post": [reverse("watchlists:rename", args=[w["watchlist"].pk]),
                 reverse("watchlists:default", args=[w["watchlist"].pk]),
                 reverse("watchlists:delete", args=[w["watchlist"].pk]),
                 reverse("watchlists:item-remove", args=[w["item"].pk]),
                 reverse("watchlists:item-move", args=[w["item"].pk]),
                 reverse("alerts:edit", args=[w["rule"].pk]), reverse("alerts:delete", args=[w["rule"].pk])],
    }


def test_another_users_watchlists_rules_and_history_are_404_everywhere(client, world):
    client.force_login(world["bob"])
    urls = private_urls(world)
    for url in urls["get"]:
        assert client.get(url).status_code == 404, url
    for url in urls["post"]:
        assert client.post(url, {"name": "mine now", "direction": "up"}).status_code == 404, url
    resp = client.post(reverse("watchlists:item-add"), {"instrument": world["inst"].pk,
                                                        "watchlist": world["watchlist"].pk})
    assert resp.status_code == 404
    assert world["alice"].watchlists.get().name == "Alice's"
    assert AlertRule.objects.filter(pk=world["rule"].pk, enabled=True).exists()
    # Nor do they appear in Bob's own pages.
    assert "Alice" not in client.get(reverse("watchlists:index")).content.decode()
    assert "Alice" not in client.get(reverse("alerts:index")).content.decode()


def test_a_rule_cannot_point_at_another_users_watchlist(client, world):
    client.force_login(world["bob"])
    resp = client.post(reverse("alerts:create"), {
        "scope": "watchlist", "watchlist": world["watchlist"].pk, "metric": "taker_sell_ratio", "comparator": "gte",
        "threshold": "0.6", "interval": "1m", "cooldown_minutes": "240", "enabled": "on", "deliver_email": "on"})
    assert resp.status_code == 200
    assert "Select a valid choice" in resp.content.decode()
    assert not AlertRule.objects.filter(user=world["bob"]).exists()


def test_anonymous_users_are_sent_to_login(client, world):
    urls = private_urls(world)
    for url in [*urls["get"], reverse("watchlists:index"), reverse("alerts:index"), reverse("alerts:create")]:
        resp = client.get(url)
        assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/"), url


def test_forms_need_a_csrf_token(world):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(world["alice"])
    assert strict.post(reverse("watchlists:create"), {"name": "x"}).status_code == 403
    assert strict.post(reverse("alerts:delete", args=[world["rule"].pk])).status_code == 403
    page = strict.get(reverse("watchlists:index")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert strict.post(reverse("watchlists:create"), {"name": "x", "csrfmiddlewaretoken": token}).status_code == 302


def test_rule_form_shows_validation_errors_inline(client, world):
    client.force_login(world["alice"])
    resp = client.post(reverse("alerts:create"), {
        "scope": "instrument", "metric": "taker_sell_ratio", "comparator": "gte", "threshold": "0.6",
        "rearm_level": "0.7", "interval": "1m", "cooldown_minutes": "240", "quiet_start": "22:00"})
    html = resp.content.decode()
    assert resp.status_code == 200
    assert "Choose the instrument this rule watches." in html
    assert "re-arm level must be at or below the threshold" in html
    assert "Give both the start and the end of quiet hours" in html


def test_signup_requires_email_verification_then_logs_in(client):
    resp = client.post("/accounts/signup/", {"email": "carol@example.com", "password1": PASSWORD,
                                             "password2": PASSWORD})
    assert resp.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[0].body).group(0)
    # Not verified yet: login is refused with a pointer to the email.
    client.logout()
    resp = client.post("/accounts/login/", {"login": "carol@example.com", "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    path = link.split("://", 1)[1].split("/", 1)[1]
    resp = client.post("/" + path)
    assert resp.status_code == 302
    assert EmailAddress.objects.get(email="carol@example.com").verified
    assert client.session.get("_auth_user_id")


def test_failed_logins_are_throttled_with_a_clear_message(client, world, flush_redis):
    for _ in range(5):
        client.post("/accounts/login/", {"login": "alice@example.com", "password": "wrong"})
    resp = client.post("/accounts/login/", {"login": "alice@example.com", "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    assert "Too many failed login attempts" in resp.content.decode()


def test_one_click_unsubscribe_disables_the_rule_without_login(world):
    from apps.alerts.services import unsubscribe_token

    anonymous = Client(enforce_csrf_checks=True)
    url = reverse("alerts:unsubscribe", args=[unsubscribe_token(world["rule"])])
    assert "Stop this alert?" in anonymous.get(url).content.decode()
    assert anonymous.post(url, {"List-Unsubscribe": "One-Click"}).status_code == 200
    world["rule"].refresh_from_db()
    assert not world["rule"].enabled
    assert anonymous.get(url[:-3] + "xx/").status_code == 400


@pytest.mark.django_db(transaction=True)
async def test_private_socket_refuses_anonymous_and_foreign_origins_and_delivers_own_toasts(flush_redis):
    from asgiref.sync import sync_to_async
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    origin = [(b"origin", b"http://127.0.0.1:8000")]
    comm = WebsocketCommunicator(application, "/ws/notifications/", headers=origin)
    connected, code = await comm.connect()
    assert not connected and code == 4401

    user = await sync_to_async(make_user)("dave@example.com")

    def session_cookie():
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.save()
        return store.session_key

    key = await sync_to_async(session_cookie)()
    cookie = (b"cookie", f"sessionid={key}".encode())
    foreign = WebsocketCommunicator(application, "/ws/notifications/",
                                    headers=[(b"origin", b"https://evil.example"), cookie])
    assert not (await foreign.connect())[0]
    comm = WebsocketCommunicator(application, "/ws/notifications/", headers=[*origin, cookie])
    assert (await comm.connect())[0]
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    await layer.group_send(f"user.{user.pk + 1}", {"type": "alert.fired", "event": {"id": 1}})
    await layer.group_send(f"user.{user.pk}", {"type": "alert.fired", "event": {"id": 2}})
    assert (await comm.receive_json_from(timeout=5)) == {"type": "alert", "event": {"id": 2}}
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()


def test_account_pages_use_the_site_layout(client, world):
    for url in ("/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"):
        html = client.get(url).content.decode()
        assert 'class="topbar"' in html and "PressureWeb" in html, url
    client.force_login(world["alice"])
    assert 'class="topbar"' in client.get("/accounts/password/change/").content.decode()


def test_daily_digest_groups_waiting_events_into_one_email(world):
    from apps.alerts.services import alert_digests_send

    rule = world["rule"]
    AlertEvent.objects.all().delete()
    for minute in range(3):
        AlertEvent.objects.create(rule=rule, instrument=world["inst"], value=0.7 + minute / 100, threshold=0.6,
                                  bucket_start=f"2024-08-09T00:0{minute}:00Z", email_status="digest")
    assert alert_digests_send() == 1
    assert len(mail.outbox) == 1 and "3 alerts" in mail.outbox[0].subject
    assert mail.outbox[0].extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert set(AlertEvent.objects.values_list("email_status", flat=True)) == {"sent"}
    assert alert_digests_send() == 0


def test_send_test_email_button(client, world):
    from pressureweb.celery import app

    app.conf.task_always_eager = True  # this test's scope only: the task body runs in-process
    try:
        client.force_login(world["alice"])
        resp = client.post(reverse("alerts:test-email"), follow=True)
    finally:
        app.conf.task_always_eager = False
    assert "A test email is on its way to alice@example.com" in resp.content.decode()
    assert mail.outbox[-1].to == ["alice@example.com"] and "Test email" in mail.outbox[-1].subject


def test_flow_rules_fire_on_the_assets_newest_flow_bar(world):
    from apps.alerts.services import alert_rules_evaluate_flows
    from apps.flows.models import FlowBar

    rule = AlertRule.objects.create(user=world["alice"], scope="asset", asset="BTC", metric="netflow_z",
                                    threshold=2.0, rearm_level=1.0)
    FlowBar.objects.create(chain="btc", asset="BTC", exchange="all", interval="1h",
                           bucket_start="2026-01-01T10:00:00Z", inflow=5, outflow=1, netflow=4, netflow_z=1.5)
    assert alert_rules_evaluate_flows(asset="BTC") == []
    FlowBar.objects.create(chain="btc", asset="BTC", exchange="all", interval="1h",
                           bucket_start="2026-01-01T11:00:00Z", inflow=50, outflow=1, netflow=49, netflow_z=3.2)
    fired = alert_rules_evaluate_flows(asset="BTC")
    assert len(fired) == 1 and fired[0].rule == rule and fired[0].value == 3.2 and fired[0].instrument is None
    assert alert_rules_evaluate_flows(asset="BTC") == []  # fires once per crossing


def test_heat_map_shows_the_assets_netflow_and_lets_you_watch_an_asset(client, world):
    from apps.flows.models import FlowBar

    FlowBar.objects.create(chain="eth", asset="ETH", exchange="all", interval="1h", bucket_start="2026-01-01T10:00:00Z",
                           inflow=3 * 10**18, outflow=10**18, netflow=2 * 10**18, netflow_z=2.5)
    client.force_login(world["alice"])
    url = world["watchlist"].get_absolute_url()
    html = client.get(url).content.decode()
    assert "2 ETH" in html and "z 2.5" in html
    client.post(reverse("watchlists:item-add"), {"watchlist": world["watchlist"].pk, "asset": "btc", "next": url})
    assert world["watchlist"].items.filter(asset="BTC").exists()


def test_heat_map_shows_funding_of_perpetuals(client, world):
    from apps.derivatives.models import FundingRate

    perp = instrument_ensure(exchange_slug="binance", market="usdm", symbol="BTCUSDT", base="BTC", quote="USDT",
                             kind="perp")
    wl.watchlist_item_add(watchlist=world["watchlist"], instrument=perp)
    FundingRate.objects.create(instrument=perp, time_ms=1_723_161_600_000, rate="-0.000125")
    client.force_login(world["alice"])
    html = client.get(world["watchlist"].get_absolute_url()).content.decode()
    assert "-0.000125" in html and "(-1 bp)" in html


def test_derivatives_rules_read_liquidations_and_funding_of_the_bar(world):
    from apps.alerts.metrics import metric_value
    from apps.derivatives.models import FundingRate, Liquidation
    from apps.pressure.models import PressureBar

    perp = instrument_ensure(exchange_slug="binance", market="usdm", symbol="BTCUSDT", base="BTC", quote="USDT",
                             kind="perp")
    start_ms = 1_723_161_600_000
    bar = PressureBar.objects.create(instrument=perp, interval="1m", bucket_start="2024-08-09T00:00:00Z")
    FundingRate.objects.create(instrument=perp, time_ms=start_ms - 3_600_000, rate="0.0003")
    bar.refresh_from_db()
    # A SELL liquidation order closes a long: stored as side "long".
    for i, (side, qty) in enumerate((("long", "0.5"), ("long", "0.25"), ("short", "1"))):
        Liquidation.objects.create(instrument=perp, key=f"k{i}", time_ms=start_ms + 1000 * i, side=side,
                                   price="60000", qty=qty, notional=str(60000 * float(qty)), sampled=True)
    assert metric_value("long_liquidations", bar) == pytest.approx(45_000.0)
    assert metric_value("funding_rate", bar) == pytest.approx(0.0003)
