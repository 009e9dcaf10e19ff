"""The per-process group relay: one Redis subscription for all local sockets of a group."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from apps.live import relay as relay_module
from apps.live.publish import bars_payload_send, instrument_group
from apps.live.relay import group_relay
from apps.markets.services import instrument_ensure
from pressureweb.asgi import application
from tests.conftest import free_port, redis_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("flush_redis")]
ORIGIN = [(b"origin", b"http://127.0.0.1:8000")]


async def _members(group: str) -> list[str]:
    layer = get_channel_layer()
    connection = layer.connection(layer.consistent_hash(group))
    return [m.decode() for m in await connection.zrange(layer._group_key(group), 0, -1)]


async def _sockets(path: str, n: int) -> list[WebsocketCommunicator]:
    comms = []
    for _ in range(n):
        comm = WebsocketCommunicator(application, path, headers=ORIGIN)
        assert (await comm.connect())[0]
        assert (await comm.receive_json_from(timeout=5))["type"] == "hello"
        comms.append(comm)
    return comms


async def test_many_sockets_share_one_group_membership_and_all_get_each_update():
    inst = await sync_to_async(instrument_ensure)(
        exchange_slug="binance", market="spot", symbol="ETHUSDT", base="ETH", quote="USDT")
    comms = await _sockets(f"/ws/instruments/{inst.pk}/", 3)
    overview = await _sockets("/ws/overview/", 2)
    group = instrument_group(inst.pk)
    assert len(await _members(group)) == 1  # the process, not each socket
    assert await _members(group) == await _members("overview")

    bar = {"bucket_start": "2024-08-08T00:01:00Z", "trades": 7}
    await sync_to_async(bars_payload_send)(instrument_id=inst.pk, payload={"1m": [bar]})
    for comm in comms + overview:
        msg = await comm.receive_json_from(timeout=5)
        assert msg == {"type": "bars", "instrument": inst.pk, "bars": {"1m": [bar]}}

    # A socket that left gets nothing more; the others keep receiving.
    await comms[0].disconnect()
    await sync_to_async(bars_payload_send)(instrument_id=inst.pk, payload={"1m": [{**bar, "trades": 8}]})
    for comm in comms[1:]:
        assert (await comm.receive_json_from(timeout=5))["bars"]["1m"][0]["trades"] == 8
    assert len(group_relay().sockets[group]) == 2
    for comm in comms[1:] + overview:
        await comm.disconnect()


async def test_a_failing_socket_does_not_keep_the_update_from_the_others():
    relay = group_relay()
    got = []

    async def broken(text):
        raise ConnectionResetError("gone")

    async def fine(text):
        got.append(text)

    async def close():
        pass

    await relay.subscribe("instrument.77", "a", broken, close)
    await relay.subscribe("instrument.77", "b", fine, close)
    await get_channel_layer().group_send("instrument.77", {"type": "bars.update", "group": "instrument.77",
                                                          "text": '{"type":"bars"}'})
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.05)
    assert got == ['{"type":"bars"}']


async def test_rejoin_refreshes_watched_groups_and_leaves_unwatched_ones(monkeypatch):
    monkeypatch.setattr(relay_module, "REJOIN_SECONDS", 0.2)
    relay = relay_module.GroupRelay(get_channel_layer())

    async def push(text):
        pass

    async def close():
        pass

    await relay.subscribe("instrument.1", "a", push, close)
    await relay.subscribe("instrument.2", "b", push, close)
    layer = get_channel_layer()
    connection = layer.connection(layer.consistent_hash("instrument.1"))
    joined_at = await connection.zscore(layer._group_key("instrument.1"), relay.channel)
    relay.unsubscribe("instrument.2", "b")
    await asyncio.sleep(1.1)  # channels_redis scores membership in whole seconds
    assert await _members("instrument.2") == []
    assert relay.joined == {"instrument.1"}
    assert await connection.zscore(layer._group_key("instrument.1"), relay.channel) > joined_at
    for task in relay._tasks:
        task.cancel()


async def test_losing_redis_closes_every_local_socket_so_browsers_reconnect_and_catch_up(settings, tmp_path):
    port = free_port()
    redis = redis_start(port, tmp_path)
    try:
        settings.CHANNEL_LAYERS = {"default": {**settings.CHANNEL_LAYERS["default"],
                                               "CONFIG": {"hosts": [f"redis://127.0.0.1:{port}/0"]}}}
        inst = await sync_to_async(instrument_ensure)(
            exchange_slug="binance", market="spot", symbol="ETHUSDT", base="ETH", quote="USDT")
        comms = await _sockets(f"/ws/instruments/{inst.pk}/", 2) + await _sockets("/ws/overview/", 1)
        redis.kill()
        redis.wait(5)
        for comm in comms:
            assert (await comm.receive_output(timeout=10))["type"] == "websocket.close"
        assert group_relay().sockets == {} and group_relay().joined == set()

        # Redis back (empty: its memberships are gone): a new socket subscribes afresh and gets updates.
        redis = redis_start(port, tmp_path)
        (comm,) = await _sockets(f"/ws/instruments/{inst.pk}/", 1)
        await sync_to_async(bars_payload_send)(instrument_id=inst.pk, payload={"1m": [{"trades": 1}]})
        assert (await comm.receive_json_from(timeout=5))["bars"] == {"1m": [{"trades": 1}]}
        await comm.disconnect()
    finally:
        redis.kill()


async def test_pushes_from_sync_code_share_one_connection_and_survive_a_redis_restart(settings, tmp_path):
    """Ingestion and tasks (plain threads, no event loop of their own) push over one event loop per process:
    its Redis connection is kept between pushes (a new one per push cost more than the push), and a restarted
    Redis is reconnected to."""
    import redis as redis_py

    from pressureweb.lib.channels import group_send

    port = free_port()
    server = redis_start(port, tmp_path)
    try:
        settings.CHANNEL_LAYERS = {"default": {**settings.CHANNEL_LAYERS["default"],
                                               "CONFIG": {"hosts": [f"redis://127.0.0.1:{port}/0"]}}}
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add("pushes", channel)
        stats = redis_py.Redis(host="127.0.0.1", port=port)
        await asyncio.to_thread(group_send, [("pushes", {"type": "push", "n": 0})])
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 0
        before = stats.info("stats")["total_connections_received"]
        for n in range(1, 21):
            await asyncio.to_thread(group_send, [("pushes", {"type": "push", "n": n})])
        assert [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(20)] == list(range(1, 21))
        assert stats.info("stats")["total_connections_received"] - before <= 1  # this probe's own
        server.kill()
        server.wait(5)
        server = redis_start(port, tmp_path)
        await layer.group_add("pushes", channel)  # memberships went with the old server
        await asyncio.to_thread(group_send, [("pushes", {"type": "push", "n": 21})])
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 21
    finally:
        server.kill()
