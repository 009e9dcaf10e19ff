"""Bitcoin address sync against the local Esplora server: idempotency, conservation, confirmations, paging."""

from __future__ import annotations

import pytest

from apps.flows import selectors, services
from apps.flows.esplora import parse_tx
from apps.flows.models import AddressCursor, ExchangeWallet, FlowBar, FlowTx
from apps.markets.models import SourceStatus
from tests.flowserver import esplora_tx, sample

from .scenarios import BTC, TIP, USERS, basic_history, deposits, labels_map

pytestmark = pytest.mark.django_db
T0 = 1_719_000_000 - 1_719_000_000 % 3600


def sync(*addresses: str) -> list[services.AddressSyncResult]:
    return [services.btc_address_sync(wallet_id=ExchangeWallet.objects.get(chain="btc", address=a).pk)
            for a in addresses]


def snapshot() -> set[tuple]:
    return set(FlowTx.objects.values_list("txid", "exchange", "counterparty", "inflow", "outflow", "internal", "fee",
                                          "block_height", "block_time", "confirmed"))


@pytest.fixture
def basic(flowserver, btc_wallets):
    history = basic_history(btc_wallets, T0)
    flowserver.state.tip = TIP
    flowserver.state.add(*history.values())
    w = btc_wallets
    return {"txs": history, "addresses": [w["binance"][0], w["binance"][1], w["coinbase"][0], w["kraken"][0]]}


def test_each_transaction_is_stored_once_and_a_second_sync_stores_nothing(basic):
    first = sync(*basic["addresses"])
    txids = {tx["txid"] for tx in basic["txs"].values()}
    assert set(FlowTx.objects.values_list("txid", flat=True)) == txids
    # Seen through several wallets, each transaction still counts as new exactly once.
    assert sum(r.txs_new for r in first) == len(txids)
    assert all(r.complete and not r.malformed and not r.errors for r in first)
    before = snapshot()

    second = sync(*basic["addresses"])
    assert sum(r.txs_new for r in second) == 0
    assert sum(r.stored.inserted + r.stored.updated + r.stored.deleted for r in second) == 0
    assert snapshot() == before
    # Wallets without pending transactions and with an unchanged history are not even paged.
    skipped = {r.address for r in second if r.skipped}
    assert skipped == {basic["addresses"][2], basic["addresses"][3]}
    status = SourceStatus.objects.get(name=services.esplora_client().source)
    assert status.trades_inserted == FlowTx.objects.count() and status.errors == 0


def test_flows_are_conserved_per_exchange_and_transaction(basic):
    sync(*basic["addresses"])
    labels = labels_map()
    for raw in basic["txs"].values():
        tx = parse_tx(raw)
        spent, received = {}, {}
        for address, value in tx.inputs:
            if address in labels:
                spent[labels[address]] = spent.get(labels[address], 0) + value
        for address, value in tx.outputs:
            if address in labels:
                received[labels[address]] = received.get(labels[address], 0) + value
        for exchange in spent.keys() | received.keys():
            rows = FlowTx.objects.filter(txid=tx.txid, exchange=exchange)
            total = {k: sum(int(getattr(r, k)) for r in rows) for k in ("inflow", "outflow", "internal", "fee")}
            assert spent.get(exchange, 0) == total["internal"] + total["outflow"] + total["fee"], (tx.txid, exchange)
            assert received.get(exchange, 0) == total["internal"] + total["inflow"], (tx.txid, exchange)


def test_the_flow_kinds_land_where_they_belong(basic):
    sync(*basic["addresses"])
    t = {name: tx["txid"] for name, tx in basic["txs"].items()}

    def rows(name):
        return {(r.exchange, r.counterparty): (int(r.inflow), int(r.outflow), int(r.internal), int(r.fee))
                for r in FlowTx.objects.filter(txid=t[name])}

    assert rows("deposit") == {("binance", ""): (8 * BTC, 0, 0, 0)}
    assert rows("withdrawal") == {("binance", ""): (0, BTC, 2 * BTC - 3_000, 3_000)}  # change back is internal
    assert rows("internal") == {("binance", ""): (0, 0, 3 * BTC - 5_000, 2_000)}
    assert rows("exchange_to_exchange") == {
        ("binance", ""): (0, 0, 15 * BTC // 10 - 1_000, 1_000),
        ("binance", "coinbase"): (0, 25 * BTC // 10, 0, 0),
        ("coinbase", "binance"): (25 * BTC // 10, 0, 0, 0),
    }
    assert rows("two_exchanges") == {("binance", ""): (3 * BTC, 0, 0, 0), ("kraken", ""): (BTC, 0, 0, 0)}


def test_confirmation_threshold_keeps_young_transactions_pending_until_they_are_final(basic, flowserver):
    sync(*basic["addresses"])
    t = {name: tx["txid"] for name, tx in basic["txs"].items()}
    pending = set(FlowTx.objects.filter(confirmed=False).values_list("txid", flat=True))
    assert pending == {t["unconfirmed"], t["one_conf"]}  # 0 and 1 confirmations, BTC_MIN_CONFIRMATIONS = 2
    shown = {p["exchange"]: p for p in selectors.pending_inflows(chain="btc", asset="BTC")}
    assert shown["binance"]["inflow"] == "1" and shown["binance"]["txs"] == 2  # 0.6 + 0.4 BTC
    assert shown["binance"]["unconfirmed"] == 1
    # Pending inflow stays out of the bars.
    all_inflow = sum(int(b.inflow) for b in FlowBar.objects.filter(exchange="all"))
    assert all_inflow == 8 * BTC + 4 * BTC

    flowserver.state.confirm(t["unconfirmed"], TIP + 1, T0 + 5 * 3600)
    flowserver.state.tip = TIP + 1  # one_conf now has 2 confirmations, the new block only 1
    results = sync(*basic["addresses"])
    assert sum(r.txs_new for r in results) == 0
    assert set(FlowTx.objects.filter(confirmed=False).values_list("txid", flat=True)) == {t["unconfirmed"]}
    flowserver.state.tip = TIP + 2
    sync(*basic["addresses"])
    assert not FlowTx.objects.filter(confirmed=False).exists()
    assert selectors.pending_inflows(chain="btc", asset="BTC") == []
    all_inflow = sum(int(b.inflow) for b in FlowBar.objects.filter(exchange="all"))
    assert all_inflow == 8 * BTC + 4 * BTC + 6 * BTC // 10 + 4 * BTC // 10


def test_a_real_mempool_transaction_to_a_labelled_address_is_pending_then_final(db, flowserver):
    """The real mainnet sample (unconfirmed when captured) paying an address we label for the test."""
    real = sample("mempool_mainnet_tx_cached.json")
    receiver = real["vout"][0]["scriptpubkey_address"]
    ExchangeWallet.objects.create(chain="btc", address=receiver, exchange="testex", label="deposit")
    flowserver.state.add(real)
    flowserver.state.tip = TIP
    sync(receiver)
    row = FlowTx.objects.get(txid=real["txid"])
    assert (row.exchange, int(row.inflow), row.confirmed) == ("testex", 253_008_854, False)
    assert selectors.pending_inflows(chain="btc", asset="BTC")[0]["inflow"] == "2.53008854"
    flowserver.state.confirm(real["txid"], TIP - 5, 1_683_865_000)
    sync(receiver)
    row.refresh_from_db()
    assert row.confirmed and row.block_height == TIP - 5
    bar = FlowBar.objects.get(exchange="testex")
    assert int(bar.inflow) == 253_008_854 and bar.bucket_start.timestamp() == 1_683_864_000


def test_a_dropped_mempool_transaction_is_removed_by_the_recheck(basic, flowserver):
    sync(*basic["addresses"])
    t = basic["txs"]["unconfirmed"]["txid"]
    flowserver.state.drop(t)
    counts = services.btc_pending_recheck()
    assert counts["dropped"] == 1 and counts["checked"] == 2
    assert not FlowTx.objects.filter(txid=t).exists()


def test_pagination_walks_three_pages_of_25_then_only_what_is_new(flowserver, btc_wallets):
    address = btc_wallets["kraken"][1]
    history = deposits(address, 75, top_height=TIP - 10, t_top=T0, prefix="page")
    flowserver.state.add(*history)
    flowserver.state.tip = TIP
    (result,) = sync(address)
    ids = [tx["txid"] for tx in history]  # newest first
    assert result.txs_new == 75 and result.complete
    assert flowserver.requests_matching(r"/txs/chain/") == [
        f"/api/address/{address}/txs/chain/{ids[24]}", f"/api/address/{address}/txs/chain/{ids[49]}",
        f"/api/address/{address}/txs/chain/{ids[74]}",
    ]
    assert AddressCursor.objects.get(wallet__address=address).last_seen_txid == ids[0]

    newer = deposits(address, 3, top_height=TIP - 5, t_top=T0 + 3600, prefix="newer")
    flowserver.state.add(*newer)
    flowserver.state.requests.clear()
    (result,) = sync(address)
    assert result.txs_new == 3 and result.pages == 1  # stopped at the cursor on the first page
    assert flowserver.requests_matching(r"/txs/chain/") == []
    assert FlowTx.objects.filter(exchange="kraken").values("txid").distinct().count() == 78


def test_an_address_with_thousands_of_transactions_is_walked_across_runs(flowserver, btc_wallets, settings):
    settings.FLOWS_BTC_MAX_PAGES = 10
    address = btc_wallets["okx"][0]
    history = deposits(address, 2000, top_height=TIP - 10, t_top=T0, prefix="busy")
    flowserver.state.add(*history)
    flowserver.state.tip = TIP
    runs, total_new = [], 0
    for _ in range(20):
        (result,) = sync(address)
        runs.append(result)
        total_new += result.txs_new
        assert result.pages <= 11  # the cap, plus the fresh first page while resuming
        assert result.txs_new <= 25 * result.pages
        if len(runs) == 3:
            flowserver.state.add(*deposits(address, 5, top_height=TIP - 2, t_top=T0 + 7200, prefix="mid"))
        if result.complete and result.skipped:
            break
    assert runs[-1].skipped == "no new transactions"
    assert total_new == 2005
    assert FlowTx.objects.filter(exchange="okx").values("txid").distinct().count() == 2005
    assert FlowTx.objects.filter(exchange="okx").count() == 2005
    assert len(runs) >= 9  # 2000 / 250 per run, then the walk from the top, then a quiet run


def test_balance_and_reserve_snapshot(basic, flowserver):
    sync(*basic["addresses"])
    stats = flowserver.state.address_stats(basic["addresses"][0])["chain_stats"]
    cursor = AddressCursor.objects.get(wallet__address=basic["addresses"][0])
    assert int(cursor.balance) == stats["funded_txo_sum"] - stats["spent_txo_sum"]
    at = FlowBar.objects.filter(exchange="binance").latest("bucket_start").bucket_start
    services.btc_reserves_snapshot(at=at)
    binance = sum(int(c.balance) for c in AddressCursor.objects.filter(wallet__exchange="binance"))
    assert int(FlowBar.objects.get(exchange="binance", bucket_start=at).reserve) == binance
    everyone = sum(int(c.balance) for c in AddressCursor.objects.all())
    assert int(FlowBar.objects.get(exchange="all", bucket_start=at).reserve) == everyone


def test_inactive_wallets_are_not_labels(basic):
    ExchangeWallet.objects.filter(address=basic["addresses"][2]).update(active=False)  # coinbase's wallet
    sync(basic["addresses"][0])
    e2e = basic["txs"]["exchange_to_exchange"]["txid"]
    assert set(FlowTx.objects.filter(txid=e2e).values_list("exchange", "counterparty")) == {("binance", "")}
    assert int(FlowTx.objects.get(txid=e2e).outflow) == 25 * BTC // 10


def test_user_addresses_are_not_labelled(labels):
    # The tests rely on these being outside every label file.
    assert not ExchangeWallet.objects.filter(address__in=USERS).exists()


def test_esplora_builder_matches_the_real_sample_shape():
    real = sample()
    built = esplora_tx("x", [(USERS[2], 50_000)], [(USERS[2], 49_040)])
    assert built.keys() == real.keys()
    assert built["vin"][0].keys() == real["vin"][0].keys()
    assert built["vin"][0]["prevout"].keys() == real["vin"][0]["prevout"].keys()
    assert built["vout"][0].keys() == real["vout"][0].keys()
    assert parse_tx(real).fee == 960
