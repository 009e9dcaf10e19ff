import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from apps.live.consumers import CLOSE_TOO_BIG, CLOSE_UNSUPPORTED_DATA
from apps.markets.services import instrument_ensure
from apps.markets.validation import TradeRow
from apps.pressure.services import market_batch_ingest
from pressureweb.asgi import application
from tests.recordings import raw_trades

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("flush_redis")]
ORIGIN = [(b"origin", b"http://127.0.0.1:8000")]


async def test_a_pushed_bar_reaches_the_instrument_socket_over_redis():
    inst = await sync_to_async(instrument_ensure)(
        exchange_slug="binance", market="spot", symbol="ETHUSDT", base="ETH", quote="USDT")
    comm = WebsocketCommunicator(application, f"/ws/instruments/{inst.pk}/", headers=ORIGIN)
    connected, _ = await comm.connect()
    assert connected
    assert (await comm.receive_json_from(timeout=5))["type"] == "hello"
    trades = [TradeRow(*t) for t in raw_trades("spot_ethusdt_20240808.gz")[:200]]
    await sync_to_async(market_batch_ingest)(instrument=inst, trades=trades, source="test")
    msg = await comm.receive_json_from(timeout=5)
    assert msg["type"] == "bars" and msg["instrument"] == inst.pk
    assert set(msg["bars"]) == {"1m", "5m", "1h"}
    assert sum(b["trades"] for b in msg["bars"]["1m"]) == 200
    await comm.disconnect()


async def test_foreign_origin_unknown_path_and_unknown_instrument_are_refused():
    comm = WebsocketCommunicator(application, "/ws/overview/", headers=[(b"origin", b"https://evil.example")])
    connected, _ = await comm.connect()
    assert not connected
    comm = WebsocketCommunicator(application, "/ws/nope/", headers=ORIGIN)
    assert (await comm.connect()) == (False, 1000)  # closed before the accept: Daphne answers the handshake 403
    comm = WebsocketCommunicator(application, "/ws/instruments/999999/", headers=ORIGIN)
    connected, code = await comm.connect()
    assert not connected and code == 4404


async def test_oversized_client_frames_close_only_that_socket():
    noisy = WebsocketCommunicator(application, "/ws/overview/", headers=ORIGIN)
    calm = WebsocketCommunicator(application, "/ws/overview/", headers=ORIGIN)
    assert (await noisy.connect())[0] and (await calm.connect())[0]
    await noisy.receive_json_from()
    await calm.receive_json_from()
    await noisy.send_to(text_data="x" * 10_000)
    closed = await noisy.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": CLOSE_TOO_BIG}
    binary = WebsocketCommunicator(application, "/ws/overview/", headers=ORIGIN)
    assert (await binary.connect())[0]
    await binary.receive_json_from()
    await binary.send_to(bytes_data=b"\x00")
    assert (await binary.receive_output(timeout=3)) == {"type": "websocket.close", "code": CLOSE_UNSUPPORTED_DATA}
    await calm.send_to(text_data='{"type":"ping"}')
    assert (await calm.receive_json_from(timeout=3)) == {"type": "pong"}
    await calm.disconnect()
    await asyncio.sleep(0)
