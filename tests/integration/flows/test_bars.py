"""FlowBar numbers against an independent computation, incremental refreshes, USD, and the live push."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.flows import services
from apps.flows.models import ExchangeWallet, FlowBar
from apps.markets.services import instrument_ensure
from apps.pressure.models import PressureBar

from .scenarios import TIP, busy_history, deposits, expected_bars, labels_map

pytestmark = pytest.mark.django_db
T0 = 1_719_000_000 - 1_719_000_000 % 3600


def sync_all(addresses):
    for address in addresses:
        services.btc_address_sync(wallet_id=ExchangeWallet.objects.get(chain="btc", address=address).pk)


@pytest.fixture
def busy(flowserver, btc_wallets):
    txs = busy_history(btc_wallets, T0, hours=10)
    flowserver.state.add(*txs)
    flowserver.state.tip = TIP
    return {"txs": txs, "addresses": [btc_wallets["binance"][0], btc_wallets["coinbase"][0],
                                      btc_wallets["kraken"][0]]}


def assert_bars_match(txs, settings):
    want = expected_bars(txs, labels_map(), whale_n=settings.WHALE_TOP_N, window=settings.NETFLOW_Z_WINDOW_DAYS * 24,
                         min_periods=settings.NETFLOW_Z_MIN_HOURS)
    got = {(b.exchange, b.bucket_start): b for b in FlowBar.objects.filter(chain="btc", asset="BTC")}
    assert set(got) == set(want)
    z_seen = 0
    for key, w in want.items():
        bar = got[key]
        for name in ("inflow", "outflow", "internal", "fee", "netflow"):
            assert int(getattr(bar, name)) == w[name], (key, name)
        assert (bar.inflow_txs, bar.outflow_txs) == (w["inflow_txs"], w["outflow_txs"]), key
        for name in ("mean_inflow", "whale_ratio", "netflow_z"):
            if w[name] is None:
                assert getattr(bar, name) is None, (key, name)
            else:
                assert getattr(bar, name) == pytest.approx(w[name], rel=1e-9), (key, name)
        z_seen += w["netflow_z"] is not None
    assert z_seen >= 10  # the comparison covered real z-scores, not just nulls


def test_bars_equal_an_independent_computation(busy, settings):
    sync_all(busy["addresses"])  # each sync refreshes only the hours it touched
    assert_bars_match(busy["txs"], settings)


def test_bars_stay_right_when_history_arrives_out_of_order(busy, flowserver, settings, btc_wallets):
    sync_all(busy["addresses"])
    # A wallet synced for the first time brings older hours (and hours in between): the bars and the
    # z-scores after them must follow.
    newcomer = btc_wallets["kraken"][1]
    early = deposits(newcomer, 14, top_height=TIP - 300, t_top=T0 + 2 * 3600, prefix="early")
    flowserver.state.add(*early)
    sync_all([newcomer])
    assert_bars_match(busy["txs"] + early, settings)
    # A full recompute changes nothing.
    before = list(FlowBar.objects.order_by("pk").values())
    services.flow_bars_refresh(chain="btc", asset="BTC", start=datetime.fromtimestamp(T0 - 6 * 3600, UTC),
                               end=datetime.fromtimestamp(T0 + 12 * 3600, UTC))
    after = list(FlowBar.objects.order_by("pk").values())
    assert [{k: v for k, v in b.items() if k != "updated_at"} for b in before] == [
        {k: v for k, v in b.items() if k != "updated_at"} for b in after]


def test_usd_values_use_our_hourly_close_and_stay_null_without_one(busy):
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    priced = datetime.fromtimestamp(T0 + 3600, UTC)
    PressureBar.objects.create(instrument=inst, interval="1h", bucket_start=priced, close=Decimal("61234.5"))
    sync_all(busy["addresses"])
    bar = FlowBar.objects.get(exchange="binance", bucket_start=priced)
    assert bar.price_usd == 61234.5
    assert bar.inflow_usd == pytest.approx(int(bar.inflow) / 1e8 * 61234.5)
    assert bar.netflow_usd == pytest.approx(int(bar.netflow) / 1e8 * 61234.5)
    unpriced = FlowBar.objects.get(exchange="binance", bucket_start=priced + timedelta(hours=1))
    assert unpriced.price_usd is None and unpriced.inflow_usd is None


def test_a_refresh_pushes_the_changed_bars_to_the_flows_group(busy, django_capture_on_commit_callbacks):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(services.FLOWS_GROUP, channel)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            sync_all(busy["addresses"][:1])

        async def first():
            return await asyncio.wait_for(layer.receive(channel), timeout=5)

        msg = async_to_sync(first)()
    finally:
        async_to_sync(layer.group_discard)(services.FLOWS_GROUP, channel)
    assert msg["type"] == "flows.update" and msg["asset"] == "BTC"
    assert {b["exchange"] for b in msg["bars"]} >= {"binance", "all"}
    assert all(isinstance(b["inflow"], str) for b in msg["bars"])
