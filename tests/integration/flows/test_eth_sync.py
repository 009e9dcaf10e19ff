"""ERC-20 Transfer logs from the local JSON-RPC endpoint: chunked scans, idempotency and reorgs."""

from __future__ import annotations

import pytest

from apps.flows import services, tasks
from apps.flows.erc20 import USDC, USDT
from apps.flows.models import BlockHash, ChainCursor, FlowBar, FlowTx

pytestmark = pytest.mark.django_db
USER = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
USER2 = "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359"


@pytest.fixture
def eth(flowserver, eth_wallets, settings):
    settings.ETH_START_BLOCK = 100
    settings.ETH_LOGS_CHUNK_BLOCKS = 10
    s = flowserver.state
    s.eth_chain(100, 130)
    b0, b1, c0 = eth_wallets["binance"][0], eth_wallets["binance"][1], eth_wallets["coinbase"][0]
    ids = {
        "deposit": s.eth_log(height=105, token=USDT, sender=USER, receiver=b0, value=1_000 * 10**6, tx="d"),
        "withdrawal": s.eth_log(height=110, token=USDC, sender=b0, receiver=USER2, value=250 * 10**6, tx="w",
                                index=3),
        "e2e": s.eth_log(height=127, token=USDT, sender=b0, receiver=c0, value=5_000 * 10**6, tx="x"),
        "late": s.eth_log(height=129, token=USDT, sender=USER, receiver=b1, value=42 * 10**6, tx="l"),
    }
    # Noise the filters must leave out: another token, and a transfer between unlabelled addresses.
    s.eth_log(height=106, token="0x" + "11" * 20, sender=USER, receiver=b0, value=1, tx="other-token")
    s.eth_log(height=107, token=USDT, sender=USER, receiver=USER2, value=1, tx="users")
    return {"ids": ids, "b0": b0, "b1": b1, "c0": c0}


def rows() -> set[tuple]:
    return set(FlowTx.objects.values_list("txid", "asset", "exchange", "counterparty", "inflow", "outflow",
                                          "block_height"))


def test_logs_are_scanned_in_chunks_and_stored_as_flows(eth, flowserver):
    result = services.eth_transfers_sync()
    assert (result.from_block, result.to_block) == (100, 130)
    ids = eth["ids"]
    assert rows() == {
        (ids["deposit"], "USDT", "binance", "", 1_000 * 10**6, 0, 105),
        (ids["withdrawal"], "USDC", "binance", "", 0, 250 * 10**6, 110),
        (ids["e2e"], "USDT", "binance", "coinbase", 0, 5_000 * 10**6, 127),
        (ids["e2e"], "USDT", "coinbase", "binance", 5_000 * 10**6, 0, 127),
        (ids["late"], "USDT", "binance", "", 42 * 10**6, 0, 129),
    }
    ranges = [(int(p[0]["fromBlock"], 16), int(p[0]["toBlock"], 16))
              for m, p in flowserver.state.rpc_calls if m == "eth_getLogs"]
    assert all(hi - lo < 10 for lo, hi in ranges) and min(lo for lo, _ in ranges) == 100
    assert ChainCursor.objects.get(chain="eth").height == 130
    usdt_all = FlowBar.objects.filter(asset="USDT", exchange="all")
    # Seen from all exchanges, binance -> coinbase is internal.
    assert sum(int(b.inflow) for b in usdt_all) == 1_042 * 10**6
    assert sum(int(b.internal) for b in usdt_all) == 5_000 * 10**6
    assert FlowBar.objects.get(asset="USDC", exchange="all").netflow_usd == pytest.approx(-250.0)


def test_a_second_scan_changes_nothing(eth):
    services.eth_transfers_sync()
    before = rows()
    again = services.eth_transfers_sync()
    assert (again.from_block, again.to_block) == (125, 130)  # the last ETH_REORG_DEPTH blocks, re-scanned
    assert again.stored.inserted == again.stored.updated == again.stored.deleted == 0
    assert again.fork_height is None and rows() == before


def test_a_reorg_rolls_back_above_the_fork_and_reingests(eth, flowserver):
    services.eth_transfers_sync()
    s = flowserver.state
    s.eth_reorg(127)  # blocks 127+ replaced; their logs gone
    s.eth_chain(131, 133, start_time=1_719_000_000 + 31 * 12)
    moved = s.eth_log(height=128, token=USDT, sender=USER2, receiver=eth["c0"], value=7 * 10**6, tx="after-reorg")
    result = services.eth_transfers_sync()
    assert result.fork_height == 126
    assert result.rolled_back == 3  # e2e (two rows) and late
    ids = eth["ids"]
    assert rows() == {
        (ids["deposit"], "USDT", "binance", "", 1_000 * 10**6, 0, 105),
        (ids["withdrawal"], "USDC", "binance", "", 0, 250 * 10**6, 110),
        (moved, "USDT", "coinbase", "", 7 * 10**6, 0, 128),
    }
    assert BlockHash.objects.get(chain="eth", height=128).hash == s.eth_blocks[128][0]
    assert ChainCursor.objects.get(chain="eth").height == 133
    usdt_all = FlowBar.objects.filter(asset="USDT", exchange="all")
    assert sum(int(b.inflow) for b in usdt_all) == 1_007 * 10**6
    assert sum(int(b.internal) for b in usdt_all) == 0
    assert not FlowBar.objects.filter(asset="USDT", exchange="binance", inflow=42 * 10**6).exists()


def test_a_result_cap_splits_the_block_range(eth, flowserver):
    flowserver.state.eth_max_logs = 1
    flowserver.state.eth_log(height=122, token=USDT, sender=USER, receiver=eth["b1"], value=5, tx="a")
    flowserver.state.eth_log(height=123, token=USDT, sender=USER, receiver=eth["b1"], value=6, tx="b")
    services.eth_transfers_sync()
    assert FlowTx.objects.filter(block_height__in=[122, 123]).count() == 2


def test_a_malformed_log_is_skipped_and_counted(eth, flowserver):
    flowserver.state.eth_logs.append({"height": 115, "token": USDT, "from": USER, "to": eth["b0"],
                                      "value": 1, "tx": "0x1234", "index": 0})  # a transaction hash too short
    result = services.eth_transfers_sync()
    assert result.malformed == 1
    assert FlowTx.objects.values("txid").distinct().count() == 4


def test_eth_polling_is_off_without_a_node(settings, db):
    settings.ETH_RPC_URL = ""
    assert services.eth_transfers_sync().disabled
    assert tasks.eth_logs_poll.run() == 0


def test_the_poll_task_scans(eth):
    assert tasks.eth_logs_poll.run() == 4


def etherscan_row(*, block: int, sender: str, receiver: str, value: int, name: str, error: bool = False) -> dict:
    """An item of Etherscan's account txlist (strings throughout, as Etherscan sends them)."""
    import hashlib

    return {"blockNumber": str(block), "timeStamp": str(1_719_000_000 + block * 12),
            "hash": "0x" + hashlib.sha256(name.encode()).hexdigest(), "nonce": "1", "blockHash": "0x" + "ab" * 32,
            "transactionIndex": "0", "from": sender, "to": receiver, "value": str(value), "gas": "21000",
            "gasPrice": "20000000000", "isError": "1" if error else "0", "txreceipt_status": "0" if error else "1",
            "input": "0x", "contractAddress": "", "cumulativeGasUsed": "21000", "gasUsed": "21000",
            "confirmations": "10", "methodId": "0x", "functionName": ""}


def test_native_eth_via_etherscan_when_a_key_is_set(eth, flowserver, settings):
    from apps.flows.models import ExchangeWallet

    assert services.etherscan_client() is None  # off without a key
    settings.ETHERSCAN_API_KEY = "test-key"
    settings.ETHERSCAN_URL = flowserver.etherscan_url
    b0 = eth["b0"]
    fee = 21_000 * 20_000_000_000
    flowserver.state.etherscan_txs[b0] = [
        etherscan_row(block=200, sender=USER, receiver=b0, value=3 * 10**18, name="in"),
        etherscan_row(block=201, sender=b0, receiver=USER2, value=10**18, name="out"),
        etherscan_row(block=202, sender=b0, receiver=USER2, value=5 * 10**18, name="failed", error=True),
    ]
    wallet = ExchangeWallet.objects.get(chain="eth", address=b0)
    stored = services.eth_native_sync(wallet_id=wallet.pk)
    assert stored.inserted == 3
    got = {(r.block_height, int(r.inflow), int(r.outflow), int(r.fee)) for r in FlowTx.objects.filter(asset="ETH")}
    assert got == {(200, 3 * 10**18, 0, 0), (201, 0, 10**18, fee), (202, 0, 0, fee)}
    again = services.eth_native_sync(wallet_id=wallet.pk)
    assert again.inserted == again.updated == 0 and again.unchanged == 3
    assert FlowBar.objects.filter(asset="ETH", exchange="all").exists()
