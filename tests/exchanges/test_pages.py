"""Sources page, stale detection, derivatives per-bar aggregates, charts and the panel."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.template import Context, Template
from django.urls import reverse

from apps.derivatives import selectors as dsel
from apps.derivatives.charts import derivatives_figure
from apps.derivatives.models import FundingRate, Liquidation, OpenInterest, OptionIV, TakerRatio, VolIndex
from apps.exchanges import ratelimit, services
from apps.exchanges.models import Feed, Source
from apps.exchanges.selectors import feed_status, sources_configured, sources_overview
from apps.markets.services import instrument_ensure

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def make_feed(slug="binance-usdm", symbol="BTCUSDT", **fields) -> Feed:
    cls = services.ADAPTERS[slug]
    source = services.source_ensure(slug=slug)
    instrument = instrument_ensure(exchange_slug=cls.exchange, market=cls.market, symbol=symbol, base="BTC",
                                   quote="USDT", kind=cls.kind)
    feed = services.feed_ensure(source=source, instrument=instrument)
    Feed.objects.filter(pk=feed.pk).update(**fields)
    feed.refresh_from_db()
    return feed


def test_feed_status_live_lagging_stale_rate_limited_unreachable():
    feed = make_feed(last_message_at=NOW - timedelta(seconds=2), connected=True)
    source = feed.source
    assert feed_status(feed=feed, source=source, now=NOW) == "live"
    feed.last_message_at = NOW - timedelta(seconds=30)
    assert feed_status(feed=feed, source=source, now=NOW) == "lagging"
    feed.last_message_at = NOW - timedelta(seconds=2)
    feed.last_book_at = NOW - timedelta(seconds=90)  # trades flow but the book froze: stale, not live
    assert feed_status(feed=feed, source=source, now=NOW) == "stale"
    feed.last_book_at = None
    feed.connected = False
    assert feed_status(feed=feed, source=source, now=NOW) == "lagging"  # reconnecting
    source.state, source.until_ms = ratelimit.BANNED, int(NOW.timestamp() * 1000) + 60_000
    assert feed_status(feed=feed, source=source, now=NOW) == "rate-limited"
    source.state, source.until_ms = ratelimit.UNREACHABLE, None
    assert feed_status(feed=feed, source=source, now=NOW) == "unreachable"
    fresh = make_feed(slug="binance-spot")
    assert feed_status(feed=fresh, source=fresh.source, now=NOW) == "not started"


def test_sources_page_lists_every_configured_source_and_how_to_turn_it_on(client, settings):
    settings.EXCHANGES_ENABLED = False
    resp = client.get(reverse("exchanges:sources"))
    assert resp.status_code == 200
    text = resp.content.decode()
    # Every source this build can read is listed, off, with the setting that turns it on.
    for slug in ("binance-spot", "binance-usdm", "bybit-spot", "bybit-linear", "okx-spot", "okx-swap",
                 "coinbase-spot", "kraken-spot", "deribit-options"):
        assert f'data-configured="{slug}"' in text
    assert text.count('data-configured-state="off"') == 9
    assert "EXCHANGES_ENABLED=1" in text and "collect_instrument binance-usdm SOLUSDT" in text
    assert "BTCUSDT, ETHUSDT" in text and "BTC-USDT-SWAP, ETH-USDT-SWAP" in text
    assert "<script>" not in text  # CSP: no inline scripts


def test_configured_source_states_off_never_run_running_failing(settings):
    settings.EXCHANGES_ENABLED = True
    settings.EXCHANGE_SOURCES = ["binance-usdm", "bybit-linear", "okx-swap"]
    now = datetime.now(tz=UTC)
    make_feed(last_message_at=now - timedelta(seconds=1), connected=True)
    make_feed(slug="bybit-linear", last_message_at=now - timedelta(minutes=5), connected=True)
    states = {c.slug: (c.state, c.reason) for c in sources_configured(now=now)}
    assert states["binance-usdm"][0] == "running"
    assert states["bybit-linear"][0] == "failing" and "manage.py collect running" in states["bybit-linear"][1]
    assert states["okx-swap"][0] == "never run"
    assert states["binance-spot"] == ("off", "not in EXCHANGE_SOURCES: add binance-spot to it")
    Source.objects.filter(slug="binance-usdm").update(state=ratelimit.BANNED, last_error="HTTP 418",
                                                      until_ms=int(now.timestamp() * 1000) + 60_000)
    states = {c.slug: (c.state, c.reason) for c in sources_configured(now=now)}
    assert states["binance-usdm"] == ("failing", "banned: HTTP 418")
    services.source_ensure(slug="okx-swap")
    Source.objects.filter(slug="okx-swap").update(enabled=False)
    assert {c.slug: c.state for c in sources_configured(now=now)}["okx-swap"] == "off"


@pytest.mark.parametrize(("symbol", "split"), [
    ("SOLUSDT", ("SOL", "USDT")), ("SOL-USDT-SWAP", ("SOL", "USDT")), ("sol/usdc", ("SOL", "USDC")),
    ("XBTUSD", ("XBT", "USD")), ("ETHBTC", ("ETH", "BTC")), ("USDT", None), ("SOLXYZ", None),
])
def test_symbol_split(symbol, split):
    assert services.symbol_split(symbol) == split


def test_collect_instrument_adds_a_feed_the_registry_collects(settings):
    settings.EXCHANGE_SOURCES = ["binance-usdm"]
    settings.EXCHANGE_DEFAULT_BASES = []
    out = io.StringIO()
    call_command("collect_instrument", "binance-usdm", "SOLUSDT", stdout=out)
    assert "SOLUSDT (SOL/USDT perp) will be collected from binance-usdm" in out.getvalue()
    feeds = services.registry_sync()
    assert [(f.source.slug, f.instrument.symbol, f.instrument.kind) for f in feeds] == [
        ("binance-usdm", "SOLUSDT", services.ADAPTERS["binance-usdm"].kind)]
    Feed.objects.update(enabled=False)
    call_command("collect_instrument", "binance-usdm", "SOLUSDT", stdout=out)  # again: enabled, not duplicated
    assert [f.instrument.symbol for f in services.registry_sync()] == ["SOLUSDT"]
    with pytest.raises(CommandError, match="unknown source 'binance-futures'"):
        call_command("collect_instrument", "binance-futures", "SOLUSDT")
    with pytest.raises(CommandError, match="give --base and --quote"):
        call_command("collect_instrument", "okx-swap", "WEIRD")


def test_sources_page_lists_sources_feeds_and_states(client):
    now = datetime.now(tz=UTC)
    feed = make_feed(last_message_at=now - timedelta(seconds=1), connected=True, message_rate=123.4,
                     trades_stored=5000, rejected=3, sequence_gaps=2, last_event_ms=int(now.timestamp() * 1000) - 1500)
    Source.objects.filter(pk=feed.source_id).update(state=ratelimit.RATE_LIMITED, rate_limited=4,
                                                    until_ms=int(now.timestamp() * 1000) + 30_000)
    make_feed(slug="bybit-linear", last_message_at=now - timedelta(minutes=5), connected=True)
    resp = client.get(reverse("exchanges:sources"))
    text = resp.content.decode()
    assert resp.status_code == 200
    assert 'data-feed-status="rate-limited"' in text and 'data-feed-status="stale"' in text
    assert "123.4" in text and "5,000" in text and "UTC" in text and "HTTP 429: 4" in text
    rows = sources_overview()
    assert [r.source.slug for r in rows] == ["binance-usdm", "bybit-linear"]
    assert rows[0].feeds[0].lag_s == pytest.approx(0.5, abs=0.2)


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def test_derivatives_bars_align_to_bar_buckets_with_changes_and_lower_bounds():
    feed = make_feed()
    inst = feed.instrument
    t0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    m = 60_000
    FundingRate.objects.create(instrument=inst, time_ms=_ms(t0) - 3 * m, rate=Decimal("0.0001"))
    FundingRate.objects.create(instrument=inst, time_ms=_ms(t0) + 2 * m + 5, rate=Decimal("-0.0002"))
    OpenInterest.objects.create(instrument=inst, time_ms=_ms(t0) + 10, oi_base=Decimal(100), oi_usd=Decimal(6000000))
    OpenInterest.objects.create(instrument=inst, time_ms=_ms(t0) + m + 10, oi_base=Decimal(110),
                                oi_usd=Decimal(6600000))
    Liquidation.objects.create(instrument=inst, key="a", time_ms=_ms(t0) + m + 1, side="long", price=Decimal(60000),
                               qty=Decimal("0.5"), notional=Decimal(30000), sampled=True)
    Liquidation.objects.create(instrument=inst, key="b", time_ms=_ms(t0) + m + 2, side="short", price=Decimal(60010),
                               qty=Decimal("0.1"), notional=Decimal(6001), sampled=True)
    TakerRatio.objects.create(instrument=inst, time_ms=_ms(t0), period="5m", buy_vol=Decimal(3), sell_vol=Decimal(1),
                              ratio=Decimal(3))
    VolIndex.objects.create(currency="BTC", time_ms=_ms(t0) + 30_000, dvol=Decimal("45.5"))
    VolIndex.objects.create(currency="BTC", time_ms=_ms(t0) + 2 * m, dvol=Decimal("47"))
    OptionIV.objects.create(currency="BTC", time_ms=_ms(t0) + m, atm_iv=Decimal("44.2"), expiry_ms=0)
    rows = dsel.derivatives_bars(instrument=inst, interval="1m", start=t0, end=t0 + timedelta(minutes=3))
    # ISO 8601 with a "Z", like the pressure bars beside them.
    assert [r["bucket_start"] for r in rows] == ["2026-11-25T10:00:00Z", "2026-11-25T10:01:00Z", "2026-11-25T10:02:00Z"]
    assert [r["funding_rate"] for r in rows] == [0.0001, 0.0001, -0.0002]  # carried forward from before
    assert rows[2]["funding_change"] == pytest.approx(-0.0003)
    assert [r["oi_base"] for r in rows] == [100, 110, 110]
    assert rows[1]["oi_change_base"] == 10 and rows[1]["oi_change_pct"] == pytest.approx(10)
    assert rows[1]["oi_change_usd"] == pytest.approx(600000)
    assert (rows[1]["liq_long_usd"], rows[1]["liq_short_usd"], rows[1]["liq_lower_bound"]) == (30000, 6001, True)
    assert rows[0]["liq_long_usd"] == 0 and not rows[0]["liq_lower_bound"]
    assert rows[0]["exch_taker_sell_ratio"] == pytest.approx(0.25)
    assert [r["dvol"] for r in rows] == [45.5, 45.5, 47.0] and rows[2]["dvol_change"] == pytest.approx(1.5)
    assert [r["atm_iv"] for r in rows] == [None, 44.2, 44.2]

    fig = json.loads(derivatives_figure(rows, base="BTC", quote="USDT"))
    metas = [t["meta"] for t in fig["data"]]
    assert {"y": "liq_long_usd", "sign": -1} in metas and {"y": "oi_base"} in metas
    longs = next(t for t in fig["data"] if t["meta"].get("y") == "liq_long_usd")
    assert longs["y"][1] == -30000 and "lower bound" in longs["name"]


def test_derivatives_panel_and_series_endpoint(client):
    feed = make_feed()
    now = datetime.now(tz=UTC)
    FundingRate.objects.create(instrument=feed.instrument, time_ms=_ms(now) - 60_000, rate=Decimal("-0.00012"))
    html = Template('{% load derivatives %}{% derivatives_panel instrument %}').render(
        Context({"instrument": feed.instrument}))
    assert "-0.0120% per interval" in html and 'data-term="funding-rate"' in html
    assert 'data-term="open-interest"' in html and "UTC" in html and "<script" not in html
    url = reverse("exchanges:derivatives-series", args=[feed.instrument.pk])
    assert url in html
    resp = client.get(url, {"interval": "1m", "minutes": "10"})
    payload = resp.json()
    assert resp.status_code == 200 and payload["rows"] in (10, 11)
    funding = next(t for t in payload["figure"]["data"] if t["meta"].get("y") == "funding_rate")
    assert funding["y"][-1] == pytest.approx(-0.012)
    assert client.get(url, {"interval": "2m"}).status_code == 400


def test_deribit_dvol_and_atm_iv_through_the_adapter(exchanges_at):
    now = datetime.now(tz=UTC)
    t = _ms(now) - _ms(now) % 3_600_000
    # get_volatility_index_data in Deribit's documented shape: [time, open, high, low, close].
    exchanges_at.dvol["BTC"] = [[t - 3_600_000, 52.1, 53.0, 51.9, 52.4], [t, 52.4, 55.0, 52.0, 54.75]]
    expiry = now + timedelta(days=9)
    code = expiry.strftime("%d%b%y").upper()
    exchanges_at.deribit_book["BTC"] = [
        {"instrument_name": f"BTC-{code}-60000-C", "mark_iv": 48.2, "underlying_price": 60210.5},
        {"instrument_name": f"BTC-{code}-60000-P", "mark_iv": 48.6, "underlying_price": 60210.5},
        {"instrument_name": f"BTC-{code}-65000-C", "mark_iv": 45.0, "underlying_price": 60210.5},
    ]
    assert services.dvol_poll(currency="btc") == 2
    assert list(VolIndex.objects.order_by("time_ms").values_list("dvol", flat=True)) == [Decimal("52.4"),
                                                                                        Decimal("54.75")]
    assert services.option_iv_poll(currency="BTC") == 1
    iv = OptionIV.objects.get()
    assert iv.atm_iv == Decimal("48.4") and iv.underlying_price == Decimal("60210.5")
