import copy

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.flows.accounting import FlowRecord, classify_tx
from apps.flows.esplora import MAX_SATS, MalformedTx, Tx, confirmations, parse_tx, parse_txs

from .builders import ESPLORA_SAMPLES, esplora_tx

RBF_TXID = "b6a53d8a8025c0c5b194345925a99741b645cae0b1f180f0613273029f2bf698"
MAINNET_TXID = "21518a98d1aa9df524865d2f88c578499f524eb1d0c4d3e70312ab863508692f"
SPENDER = "bc1qmxr9gxrtjrv4mflrrgcf986mtd4q4ujss432tk"
PAYEE = "bc1qak63vld8a97884unr6epxzkrud8xs3dfdqswy2"


def sample(name: str) -> bytes:
    return (ESPLORA_SAMPLES / name).read_bytes()


def test_real_esplora_api_tx_parses():
    tx = parse_tx(sample("mempool_tx02_api_tx.json"))
    assert tx == Tx(RBF_TXID, None, None, False, (("1stAprEZapjCYGUACUcXohQqSHF9MU5Kj", 50_000),),
                    (("1stAprEZapjCYGUACUcXohQqSHF9MU5Kj", 49_040),), 960)


def test_real_mempool_space_tx_with_extra_fields_parses():
    tx = parse_tx(orjson.loads(sample("mempool_mainnet_tx_cached.json")))
    assert tx.txid == MAINNET_TXID
    assert tx.inputs == ((SPENDER, 253_017_648),)
    assert tx.outputs == ((PAYEE, 253_008_854),)
    assert (tx.fee, tx.confirmed, tx.block_height, tx.block_time) == (8_794, False, None, None)


def test_real_tx_with_injected_labels_gives_inflow_outflow_or_exchange_to_exchange():
    tx = parse_tx(sample("mempool_mainnet_tx_cached.json"))
    assert classify_tx(tx, {PAYEE: "binance"}) == [
        FlowRecord(MAINNET_TXID, "binance", 253_008_854, 0, 0, None, False, None, None, 0)]
    assert classify_tx(tx, {SPENDER: "okx"}) == [
        FlowRecord(MAINNET_TXID, "okx", 0, 253_008_854, 0, None, False, None, None, 8_794)]
    assert classify_tx(tx, {SPENDER: "okx", PAYEE: "binance"}) == [
        FlowRecord(MAINNET_TXID, "binance", 253_008_854, 0, 0, "okx", True, None, None, 0),
        FlowRecord(MAINNET_TXID, "okx", 0, 0, 0, None, False, None, None, 8_794),
        FlowRecord(MAINNET_TXID, "okx", 0, 253_008_854, 0, "binance", True, None, None, 0),
    ]
    # Paying itself (the RBF sample spends to its own address): internal, fee is the only cost.
    rbf = parse_tx(sample("mempool_tx02_api_tx.json"))
    assert classify_tx(rbf, {"1stAprEZapjCYGUACUcXohQqSHF9MU5Kj": "kraken"}) == [
        FlowRecord(RBF_TXID, "kraken", 0, 0, 49_040, None, False, None, None, 960)]


def test_confirmed_status_and_confirmations():
    tx = parse_tx(esplora_tx("ab" * 32, [("u1", 10_000)], [("u2", 9_000)], height=850_000, block_time=1_719_000_000))
    assert (tx.confirmed, tx.block_height, tx.block_time) == (True, 850_000, 1_719_000_000)
    assert confirmations(tx, 850_000) == 1
    assert confirmations(tx, 850_005) == 6
    assert confirmations(tx, 849_999) == 0  # stale tip or reorged away: not confirmed from here
    assert confirmations(parse_tx(sample("mempool_tx02_api_tx.json")), 850_000) == 0


def test_coinbase_has_no_inputs_and_no_fee():
    obj = esplora_tx("cd" * 32, [], [("miner", 312_500_000), (None, 0)], fee=0)
    obj["vin"] = [{"txid": "00" * 32, "vout": 4294967295, "prevout": None, "scriptsig": "03", "is_coinbase": True,
                   "sequence": 4294967295}]
    tx = parse_tx(obj)
    assert (tx.inputs, tx.outputs, tx.fee) == ((), (("miner", 312_500_000), (None, 0)), 0)
    obj["fee"] = 5
    with pytest.raises(MalformedTx, match="coinbase transaction with a non-zero fee"):
        parse_tx(obj)


def test_outputs_without_address_are_none():
    tx = parse_tx(esplora_tx("ef" * 32, [("u1", 10_000)], [("u2", 8_000), (None, 1_000)]))
    assert tx.outputs == (("u2", 8_000), (None, 1_000))


def good() -> dict:
    return esplora_tx("12" * 32, [("a", 5_000), ("b", 7_000)], [("c", 11_000)])


def mutated(path: tuple, value=KeyError) -> dict:
    obj = good()
    node = obj
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return obj


MALFORMED = [
    (mutated(("txid",)), "missing txid"),
    (mutated(("txid",), "XYZ"), "txid is not 64 lowercase hex digits"),
    (mutated(("txid",), "AB" * 32), "txid is not 64 lowercase hex digits"),
    (mutated(("vin",)), "missing vin"),
    (mutated(("vin",), {}), "vin is not a list"),
    (mutated(("vin",), []), "vin is empty"),
    (mutated(("vin", 0), "x"), "vin[0] is not an object"),
    (mutated(("vin", 1, "prevout")), "missing vin[1].prevout"),
    (mutated(("vin", 1, "prevout"), None), "vin[1].prevout is not an object"),
    (mutated(("vin", 0, "prevout", "value")), "missing vin[0].prevout.value"),
    (mutated(("vin", 0, "prevout", "value"), -5_000), "vin[0].prevout.value is negative"),
    (mutated(("vin", 0, "prevout", "value"), 5_000.0), "vin[0].prevout.value is not an integer (float)"),
    (mutated(("vin", 0, "prevout", "value"), "5000"), "vin[0].prevout.value is not an integer (str)"),
    (mutated(("vin", 0, "prevout", "value"), True), "vin[0].prevout.value is not an integer (bool)"),
    (mutated(("vin", 0, "prevout", "value"), MAX_SATS + 1), "vin[0].prevout.value exceeds 21 million BTC"),
    (mutated(("vin", 0, "prevout", "scriptpubkey_address"), 7), "vin[0].prevout.scriptpubkey_address is not"),
    (mutated(("vout",), []), "vout is empty"),
    (mutated(("vout", 0, "value")), "missing vout[0].value"),
    (mutated(("vout", 0, "value"), 10**30), "vout[0].value exceeds 21 million BTC"),
    (mutated(("vout", 0, "scriptpubkey_address"), ""), "vout[0].scriptpubkey_address is not an address string"),
    (mutated(("fee",)), "missing fee"),
    (mutated(("fee",), -1), "fee is negative"),
    (mutated(("fee",), 999), "fee 999 != inputs 12000 - outputs 11000"),
    (mutated(("status",)), "missing status"),
    (mutated(("status", "confirmed"), "yes"), "status.confirmed is not a boolean"),
    (mutated(("status", "block_height")), "missing status.block_height"),
    (mutated(("status", "block_height"), -1), "status.block_height out of range"),
    (mutated(("status", "block_time"), 1_000), "status.block_time out of range"),
    (mutated(("status", "block_time"), None), "status.block_time is not an integer"),
    ([good()], "transaction is not an object"),
    (b"{not json", "not JSON"),
]


@pytest.mark.parametrize(("obj", "reason"), MALFORMED)
def test_malformed_transactions_raise_with_their_reason(obj, reason):
    with pytest.raises(MalformedTx) as err:
        parse_tx(obj)
    assert err.value.reason.startswith(reason)


def test_sums_beyond_the_supply_are_rejected_even_when_each_value_is_not():
    half = MAX_SATS // 2 + 1
    obj = esplora_tx("34" * 32, [("a", half), ("b", half)], [("c", half), ("d", half)])
    with pytest.raises(MalformedTx, match="total value exceeds 21 million BTC"):
        parse_tx(obj)


def test_parse_txs_reads_an_address_txs_page_and_names_the_bad_item():
    page = [good(), esplora_tx("56" * 32, [("x", 3)], [("y", 2)])]
    assert [t.txid for t in parse_txs(orjson.dumps(page))] == ["12" * 32, "56" * 32]
    page[1]["fee"] = "1"
    with pytest.raises(MalformedTx, match=r"transaction \[1\]: fee is not an integer"):
        parse_txs(page)
    with pytest.raises(MalformedTx, match="transaction list is not a list"):
        parse_txs(b"{}")


def paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, (*prefix, i))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
ALL_PATHS = [p for p in paths(good()) if p]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL_PATHS), JSON, st.booleans())
def test_any_corruption_either_parses_consistently_or_raises_malformed_tx(path, value, delete):
    obj = copy.deepcopy(good())
    node = obj
    for key in path[:-1]:
        node = node[key]
    if delete and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    try:
        tx = parse_tx(obj)
    except MalformedTx as exc:
        assert exc.reason
        return
    # Whatever got through is still a consistent transaction.
    assert sum(v for _, v in tx.inputs) - sum(v for _, v in tx.outputs) == tx.fee
    assert all(isinstance(v, int) and 0 <= v <= MAX_SATS for _, v in (*tx.inputs, *tx.outputs))


def test_the_fixture_builder_produces_the_real_esplora_shape():
    real = orjson.loads(sample("mempool_tx02_api_tx.json"))
    built = esplora_tx("12" * 32, [("1stAprEZapjCYGUACUcXohQqSHF9MU5Kj", 50_000)],
                       [("1stAprEZapjCYGUACUcXohQqSHF9MU5Kj", 49_040)], height=None)
    assert set(built) == set(real) - {"sigops"}
    segwit = orjson.loads(sample("mempool_mainnet_tx_cached.json"))  # a segwit input carries "witness"
    assert set(built["vin"][0]) == set(segwit["vin"][0])
    assert set(built["vin"][0]["prevout"]) == set(real["vin"][0]["prevout"])
    assert set(built["vout"][0]) == set(real["vout"][0])
    assert built["status"] == real["status"]


ADDR = st.sampled_from(["bc1qak63vld8a97884unr6epxzkrud8xs3dfdqswy2", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", None])
VALUE = st.integers(0, 10**12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(ADDR.filter(bool), VALUE), min_size=1, max_size=5),
       st.lists(st.tuples(ADDR, VALUE), min_size=1, max_size=5), st.integers(0, 10**6),
       st.one_of(st.none(), st.integers(0, 10**6)))
def test_esplora_json_round_trips_into_tx(vin, vout, extra, height):
    vin = [*vin, ("bc1qmxr9gxrtjrv4mflrrgcf986mtd4q4ujss432tk", sum(v for _, v in vout) + extra)]
    obj = esplora_tx("9f" * 32, vin, vout, height=height)
    tx = parse_tx(orjson.dumps(obj))
    assert tx == Tx("9f" * 32, height, None if height is None else 1_719_000_000, height is not None,
                    tuple(vin), tuple(vout), sum(v for _, v in vin) - sum(v for _, v in vout))
