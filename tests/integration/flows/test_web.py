"""The /flows/ page, the /api/v1/flows API, the label import command, and the live consumer."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.urls import reverse

from apps.flows import selectors, services
from apps.flows.models import ExchangeWallet, FlowBar
from apps.live.consumers import CLOSE_UNSUPPORTED_DATA
from apps.live.flows import FlowsConsumer
from tests.unit.flows.builders import LABELS_DIR, read_labels

from .scenarios import TIP, basic_history

TERMS = ("exchange-inflow", "exchange-outflow", "exchange-netflow", "exchange-reserve", "exchange-whale-ratio",
         "stablecoin-netflow", "netflow-z-score")


@pytest.fixture
def recent(flowserver, btc_wallets):
    """The basic history, mined over the last few hours so it falls in the page's default range."""
    now = datetime.now(tz=UTC)
    t0 = int(now.timestamp()) - 6 * 3600
    history = basic_history(btc_wallets, t0)
    flowserver.state.add(*history.values())
    flowserver.state.tip = TIP
    w = btc_wallets
    for address in (w["binance"][0], w["binance"][1], w["coinbase"][0], w["kraken"][0]):
        services.btc_address_sync(wallet_id=ExchangeWallet.objects.get(chain="btc", address=address).pk)
    return history


@pytest.mark.django_db
def test_the_page_without_data_says_what_to_do(client):
    resp = client.get(reverse("flows:page"))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'id="empty-state"' in html
    assert "manage.py import_wallet_labels" in html
    assert "ESPLORA_URL" in html and "ETH_RPC_URL" in html


@pytest.mark.django_db
def test_the_live_indicator_allows_three_polls_before_it_says_stale(client, settings):
    settings.FLOWS_POLL_SECONDS = 120
    html = client.get(reverse("flows:page")).content.decode()
    assert 'id="conn-status" data-state="connecting" data-stale-after-ms="360000"' in html


def test_the_page_with_data(client, recent):
    resp = client.get(reverse("flows:page"), {"asset": "BTC", "range": "24h"})
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'id="empty-state"' not in html
    for slug in TERMS:
        assert f'data-term="{slug}"' in html, slug
    assert 'id="figure-data"' in html and 'id="flow-rows"' in html and "js/flows.js" in html
    # No inline scripts: only external files and JSON data blocks (CSP script-src 'self').
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert "UTC" in html and " BTC" in html
    assert "pending-inflow" in html and "binance" in html
    # 8 BTC + 3 BTC + 1 BTC of final inflow to all exchanges over the range.
    assert re.search(r'data-field="inflow">12\.0000 BTC', html)


def test_the_page_falls_back_on_bad_parameters(client, recent):
    resp = client.get(reverse("flows:page"), {"asset": "DOGE", "range": "custom", "start": "nope"})
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "unknown asset" in html and "ISO 8601" in html


def test_api_json_fields_and_values(client, recent):
    start = (datetime.now(tz=UTC) - timedelta(hours=12)).isoformat()
    resp = client.get(reverse("api:flows"), {"chain": "btc", "exchange": "binance", "interval": "1h", "start": start})
    assert resp.status_code == 200
    body = resp.json()
    assert (body["chain"], body["asset"], body["exchange"], body["unit"]) == ("btc", "BTC", "binance", "BTC")
    bars = body["bars"]
    assert bars and all(list(b) == list(selectors.API_FIELDS) for b in bars)
    stored = FlowBar.objects.filter(exchange="binance").order_by("bucket_start")
    assert [Decimal(b["inflow"]) for b in bars] == [Decimal(int(s.inflow)) / 10**8 for s in stored]
    assert sum(Decimal(b["inflow"]) for b in bars) == Decimal(11)
    assert all(b["bucket_start"].endswith(":00:00Z") for b in bars)


def test_api_csv_has_the_same_rows(client, recent):
    params = {"chain": "btc", "exchange": "all", "start": (datetime.now(tz=UTC) - timedelta(hours=12)).isoformat()}
    as_json = client.get(reverse("api:flows"), params).json()["bars"]
    resp = client.get(reverse("api:flows"), {**params, "format": "csv"})
    assert resp["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.content.decode())))
    assert list(rows[0]) == list(selectors.API_FIELDS)
    assert [r["netflow"] for r in rows] == [b["netflow"] for b in as_json]


@pytest.mark.django_db
@pytest.mark.parametrize(("params", "message"), [
    ({"chain": "doge"}, "chain must be one of"),
    ({"chain": "btc", "asset": "USDT"}, "asset on chain btc must be"),
    ({"exchange": "nope"}, "unknown exchange"),
    ({"interval": "5m"}, "interval must be one of"),
    ({"start": "yesterday"}, "ISO 8601"),
    ({"start": "2024-06-02T00:00:00Z", "end": "2024-06-01T00:00:00Z"}, "before end"),
    ({"format": "xml"}, "format must be"),
    ({"start": "2000-01-01T00:00:00Z"}, "too long"),
])
def test_api_bad_parameters_get_400(client, labels, params, message):
    resp = client.get(reverse("api:flows"), params)
    assert resp.status_code == 400
    assert message in resp.json()["error"]


@pytest.mark.django_db
def test_import_wallet_labels_loads_every_row_once(capsys):
    btc, eth = len(read_labels("btc")), len(read_labels("eth"))
    out = io.StringIO()
    call_command("import_wallet_labels", stdout=out)
    assert ExchangeWallet.objects.filter(chain="btc").count() == btc
    assert ExchangeWallet.objects.filter(chain="eth").count() == eth
    assert f"created {btc + eth:,}" in out.getvalue()
    out = io.StringIO()
    call_command("import_wallet_labels", stdout=out)
    assert f"created 0, updated 0, unchanged {btc + eth:,}, rejected 0" in out.getvalue()
    assert ExchangeWallet.objects.count() == btc + eth


@pytest.mark.django_db
def test_import_wallet_labels_rejects_bad_addresses_with_a_reason(tmp_path):
    good = read_labels("btc")[0]
    bad_btc = good["address"][:-1] + ("1" if good["address"][-1] != "1" else "2")
    path = tmp_path / "labels.csv"
    path.write_text(
        "chain,address,exchange,label,source\n"
        f"btc,{good['address']},binance,reserve,test\n"
        f"btc,{bad_btc},binance,reserve,test\n"
        "eth,0x1234,binance,hot,test\n"
        "doge,DTestAddress,binance,hot,test\n"
        f"btc,{good['address']},binance,sideways,test\n"
    )
    out = io.StringIO()
    call_command("import_wallet_labels", str(path), stdout=out)
    text = out.getvalue()
    assert "rejected labels.csv line 3" in text and "bad base58 checksum" in text
    assert "expected 40 hex digits after 0x" in text
    assert "unknown chain 'doge'" in text
    assert "unknown label 'sideways'" in text
    assert list(ExchangeWallet.objects.values_list("address", flat=True)) == [good["address"]]
    assert (LABELS_DIR / "SOURCE.txt").exists()


async def test_the_consumer_streams_updates_and_refuses_client_frames():
    communicator = WebsocketCommunicator(FlowsConsumer.as_asgi(), "/ws/flows/")
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"
    await get_channel_layer().group_send(services.FLOWS_GROUP, {
        "type": "flows.update", "chain": "btc", "asset": "BTC", "bars": [{"exchange": "all"}], "pending": []})
    msg = await communicator.receive_json_from(timeout=5)
    assert msg == {"type": "flows", "chain": "btc", "asset": "BTC", "bars": [{"exchange": "all"}], "pending": []}
    await communicator.send_to(text_data='{"type":"subscribe"}')
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": CLOSE_UNSUPPORTED_DATA}
    await communicator.disconnect()


def test_admin_lists_search_and_edits(admin_client, recent):
    for model in ("exchangewallet", "addresscursor", "chaincursor", "blockhash", "flowtx", "flowbar",
                  "reservesnapshot"):
        assert admin_client.get(reverse(f"admin:flows_{model}_changelist")).status_code == 200, model
    wallets = reverse("admin:flows_exchangewallet_changelist")
    resp = admin_client.get(wallets, {"q": "binance", "chain__exact": "btc", "active__exact": "1"})
    assert resp.status_code == 200 and b"binance" in resp.content
    wallet = ExchangeWallet.objects.filter(exchange="binance", chain="btc").first()
    assert admin_client.get(reverse("admin:flows_exchangewallet_change", args=[wallet.pk])).status_code == 200
    resp = admin_client.post(wallets, {"action": "deactivate", "_selected_action": [wallet.pk]})
    assert resp.status_code == 302
    wallet.refresh_from_db()
    assert not wallet.active and wallet.address not in selectors.wallet_labels(chain="btc")


def test_bar_refresh_tasks_run_directly(recent):
    from apps.flows import tasks

    before = FlowBar.objects.count()
    start = (datetime.now(tz=UTC) - timedelta(hours=8)).isoformat()
    assert tasks.flow_bars_refresh.run("btc", "BTC", start, datetime.now(tz=UTC).isoformat()) >= before
    assert tasks.flow_bars_refresh_recent.run() >= 0
    assert FlowBar.objects.count() == before


@pytest.mark.django_db
def test_api_per_block_adds_up_to_the_hourly_bars(client, recent):
    start = (datetime.now(tz=UTC) - timedelta(hours=12)).isoformat()
    params = {"chain": "btc", "exchange": "binance", "start": start}
    hours = client.get(reverse("api:flows"), {**params, "interval": "1h"}).json()["bars"]
    blocks = client.get(reverse("api:flows"), {**params, "interval": "block"}).json()["bars"]
    assert blocks and all(list(b) == list(selectors.BLOCK_FIELDS) for b in blocks)
    assert all(b["exchange"] == "binance" for b in blocks)
    for name in ("inflow", "outflow", "netflow"):
        assert sum(Decimal(b[name]) for b in blocks) == sum(Decimal(h[name]) for h in hours)
    assert [b["block_height"] for b in blocks] == sorted(b["block_height"] for b in blocks)


@pytest.mark.django_db
def test_the_page_draws_the_top_exchanges_and_all(client, monkeypatch):
    """Only the exchanges with the largest gross flows in the range are sent, beside ``all``, each bar exactly."""
    monkeypatch.setattr("apps.flows.views.TOP_EXCHANGES", 2)
    hour = datetime.now(tz=UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    gross = {"binance": 5, "kraken": 9, "okx": 1, "coinbase": 7}  # BTC in, per hour
    for exchange, coins in [*gross.items(), ("all", sum(gross.values()))]:
        FlowBar.objects.create(chain="btc", asset="BTC", exchange=exchange, bucket_start=hour,
                               inflow=coins * 10**8, netflow=coins * 10**8, inflow_txs=1)
    html = client.get(reverse("flows:page"), {"asset": "BTC", "range": "24h"}).content.decode()
    rows = json.loads(re.search(r'<script id="flow-rows" type="application/json">(.*?)</script>', html, re.S)[1])
    sent = {r["exchange"]: r["inflow"] for r in rows if r["asset"] == "BTC"}
    assert sent == {"kraken": "9", "coinbase": "7", "all": "22"}
