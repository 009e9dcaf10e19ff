"""Spot and perpetual BTCUSDT read differently everywhere an instrument is named: pages, watchlists, episodes,
alert history, emails (subject, text, HTML) and live toasts; emails use human metric labels, not code names."""

import html
import re
from datetime import UTC, datetime

import pytest
from allauth.account.models import EmailAddress
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core import mail

from apps.accounts.models import User
from apps.alerts import services as alerts
from apps.alerts.models import AlertEvent, AlertRule
from apps.markets.services import instrument_ensure
from apps.pressure.models import Episode
from apps.watchlists import services as wl

pytestmark = pytest.mark.django_db
SPOT, PERP = "BTCUSDT spot · Binance", "BTCUSDT perp · Binance"
AT = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def seen(content: bytes | str) -> str:
    """What a reader sees: tags dropped, entities decoded, white space collapsed."""
    raw = content.decode() if isinstance(content, bytes) else content
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


@pytest.fixture
def world():
    spot = instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT",
                             exchange_name="Binance")
    perp = instrument_ensure(exchange_slug="binance", market="usdm", symbol="BTCUSDT", base="BTC", quote="USDT",
                             kind="perp")
    user = User.objects.create_user(username="tom", email="tom@example.com", password="x" * 20)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    watchlist = wl.watchlist_create(user=user, name="Both")
    for inst in (spot, perp):
        wl.watchlist_item_add(watchlist=watchlist, instrument=inst)
    rule = AlertRule.objects.create(user=user, scope="watchlist", watchlist=watchlist, metric="taker_sell_ratio",
                                    threshold=0.65)
    events = {inst.kind: AlertEvent.objects.create(rule=rule, instrument=inst, bucket_start=AT, value=0.723,
                                                   threshold=0.65) for inst in (spot, perp)}
    return {"spot": spot, "perp": perp, "user": user, "watchlist": watchlist, "rule": rule, "events": events}


def test_pages_name_the_market_type_and_the_exchange(client, world):
    client.force_login(world["user"])
    for inst in (world["spot"], world["perp"]):
        Episode.objects.create(instrument=inst, start=AT, confirmed_at=AT, peak_time=AT, peak_spi=81, bars=12,
                               drawdown=0.01, source="mixed")
    for url in ("/", world["watchlist"].get_absolute_url(), "/episodes/", "/alerts/"):
        page = seen(client.get(url).content)
        assert SPOT in page and PERP in page, url
    assert f"<title>{PERP} · PressureWeb</title>" in client.get(world["perp"].get_absolute_url()).content.decode()
    assert f"<title>{SPOT} · PressureWeb</title>" in client.get(world["spot"].get_absolute_url()).content.decode()


def test_alert_form_offers_instruments_by_their_full_names(client, world):
    client.force_login(world["user"])
    page = seen(client.get("/alerts/new/").content)
    assert SPOT in page and PERP in page


@pytest.mark.parametrize("kind", ["spot", "perp"])
def test_emails_name_the_instrument_completely_and_the_metric_in_words(world, kind):
    event = world["events"][kind]
    name = SPOT if kind == "spot" else PERP
    other = PERP if kind == "spot" else SPOT
    assert alerts.alert_event_email_send(event_id=event.pk)
    message = mail.outbox[-1]
    html_body = message.alternatives[0][0]
    parts = {"subject": message.subject, "text": message.body, "html": seen(html_body)}
    for part, content in parts.items():
        assert name in content and other not in content, (part, content)
        assert "taker_sell_ratio" not in content, (part, content)
    assert "taker sell ratio 72.3% (rises to or above 65%)" in message.subject
    assert "Taker sell ratio of BTCUSDT" in message.body and "was 72.3%" in message.body
    assert "the threshold is 65%" in parts["html"]


def test_digest_emails_name_each_instrument(world):
    AlertEvent.objects.filter(pk__in=[e.pk for e in world["events"].values()]).update(email_status="digest")
    assert alerts.alert_digests_send() == 1
    body = mail.outbox[-1].body
    assert f"{SPOT}: taker sell ratio 72.3%" in body and f"{PERP}: taker sell ratio 72.3%" in body


def test_live_toasts_carry_the_full_name_and_values_in_their_units(world, flush_redis):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(alerts.user_group(world["user"].pk), channel)
    received = {}
    for kind, event in world["events"].items():
        alerts.alert_toast_push(event=event)
        received[kind] = async_to_sync(layer.receive)(channel)["event"]
    assert (received["spot"]["instrument"], received["perp"]["instrument"]) == (SPOT, PERP)
    for toast in received.values():
        assert (toast["metric"], toast["value_text"], toast["threshold_text"]) == ("taker sell ratio", "72.3%", "65%")
        assert toast["title"] == "watchlist “Both”: taker sell ratio rises to or above 65% on 1m bars"


def test_replay_instruments_are_named_replay_in_words(world):
    from apps.markets.naming import instrument_full_name

    replay = instrument_ensure(exchange_slug="binance-replay", market="usdm", symbol="BTCUSDT", base="BTC",
                               quote="USDT", kind="perp", exchange_name="Binance (REPLAY)", is_replay=True)
    assert instrument_full_name(replay) == "BTCUSDT perp · Binance (REPLAY)"
    replay.exchange.name = "Binance"  # however the exchange row is named
    assert instrument_full_name(replay) == "BTCUSDT perp · Binance (REPLAY)"
