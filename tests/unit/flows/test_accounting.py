from collections import defaultdict
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.flows.accounting import FlowRecord, classify_many, classify_tx, classify_tx_naive
from apps.flows.esplora import Tx, parse_tx

from .builders import esplora_tx, read_labels

BTC = 100_000_000
H, T = 850_000, 1_719_000_000
USER = ["bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh", "3FZbgi29cpjq2GjdwV8eyHuJJnkLtktZc5",
        "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"]


def rec(txid, exchange, inflow=0, outflow=0, internal=0, cp=None, fee=0):
    return FlowRecord(txid, exchange, inflow, outflow, internal, cp, cp is not None, H, T, fee)


def flows(labels, txid, vin, vout, **kw):
    return classify_tx(parse_tx(esplora_tx(txid, vin, vout, **kw)), labels)


@pytest.fixture(scope="module")
def w(btc_wallets):
    """Three real addresses per exchange (fewer for bitfinex) from the shipped label file."""
    return {x: addrs[:3] for x, addrs in btc_wallets.items()}


def test_deposit_from_a_user_is_inflow(btc_labels, w):
    txid = "01" * 32
    got = flows(btc_labels, txid, [(USER[0], 3 * BTC)], [(w["binance"][0], 2 * BTC), (USER[1], BTC - 2_000)])
    assert got == [rec(txid, "binance", inflow=2 * BTC)]


def test_withdrawal_is_outflow_with_change_internal_and_the_fee_not_counted(btc_labels, w):
    txid = "02" * 32
    vin = [(w["coinbase"][0], 5 * BTC), (w["coinbase"][1], 2 * BTC)]
    vout = [(USER[0], BTC), (USER[1], 2 * BTC), (w["coinbase"][2], 4 * BTC - 7_000)]
    assert flows(btc_labels, txid, vin, vout) == [
        rec(txid, "coinbase", outflow=3 * BTC, internal=4 * BTC - 7_000, fee=7_000)]


def test_internal_consolidation_is_neither_inflow_nor_outflow(btc_labels, w):
    txid = "03" * 32
    vin = [(w["okx"][0], BTC), (w["okx"][1], 2 * BTC)]
    assert flows(btc_labels, txid, vin, [(w["okx"][2], 3 * BTC - 900)]) == [
        rec(txid, "okx", internal=3 * BTC - 900, fee=900)]


def test_exchange_to_exchange_with_change_back_to_the_sender(btc_labels, w):
    txid = "04" * 32
    vin = [(w["okx"][0], 10 * BTC)]
    vout = [(w["kraken"][0], 6 * BTC), (w["okx"][1], 4 * BTC - 3_000)]
    assert flows(btc_labels, txid, vin, vout) == [
        rec(txid, "kraken", inflow=6 * BTC, cp="okx"),
        rec(txid, "okx", internal=4 * BTC - 3_000, fee=3_000),
        rec(txid, "okx", outflow=6 * BTC, cp="kraken"),
    ]


def test_batch_withdrawal_paying_users_and_two_exchanges(btc_labels, w):
    txid = "05" * 32
    vin = [(w["binance"][0], 20 * BTC)]
    vout = [(USER[0], BTC), (w["coinbase"][0], 2 * BTC), (w["kraken"][1], 3 * BTC), (USER[2], 14 * BTC - 500)]
    assert flows(btc_labels, txid, vin, vout) == [
        rec(txid, "binance", outflow=15 * BTC - 500, fee=500),
        rec(txid, "binance", outflow=2 * BTC, cp="coinbase"),
        rec(txid, "binance", outflow=3 * BTC, cp="kraken"),
        rec(txid, "coinbase", inflow=2 * BTC, cp="binance"),
        rec(txid, "kraken", inflow=3 * BTC, cp="binance"),
    ]


def test_multi_owner_inputs_are_split_pro_rata_by_input_value(btc_labels, w):
    # binance puts in 6 BTC, a user 2 BTC (3:1). Outputs: 5 BTC to a user, 2.9999 BTC to kraken, fee 10,000.
    txid = "06" * 32
    vin = [(w["binance"][0], 6 * BTC), (USER[0], 2 * BTC)]
    vout = [(USER[1], 5 * BTC), (w["kraken"][0], 3 * BTC - 10_000)]
    assert flows(btc_labels, txid, vin, vout) == [
        rec(txid, "binance", outflow=375_000_000, fee=7_500),
        rec(txid, "binance", outflow=224_992_500, cp="kraken"),
        rec(txid, "kraken", inflow=74_997_500),
        rec(txid, "kraken", inflow=224_992_500, cp="binance"),
    ]


def test_exchange_receiving_more_than_it_spends_keeps_its_own_input_as_internal(btc_labels, w):
    # A payjoin-like tx: binance adds 1 BTC of its own and receives 4 BTC back.
    txid = "07" * 32
    vin = [(w["binance"][0], BTC), (USER[0], 5 * BTC)]
    vout = [(w["binance"][1], 4 * BTC), (USER[1], 2 * BTC - 1_000)]
    assert flows(btc_labels, txid, vin, vout) == [rec(txid, "binance", inflow=3 * BTC, internal=BTC)]


def test_coinbase_paying_an_exchange_is_inflow(btc_labels, w):
    tx = Tx("08" * 32, H, T, True, (), ((w["binance"][0], 312_500_000), (USER[0], 1_000)), 0)
    assert classify_tx(tx, btc_labels) == [rec("08" * 32, "binance", inflow=312_500_000)]


def test_unlabelled_and_zero_value_transactions_give_no_records(btc_labels, w):
    assert flows(btc_labels, "09" * 32, [(USER[0], BTC)], [(USER[1], BTC - 100)]) == []
    assert flows(btc_labels, "0a" * 32, [(USER[0], 1_000)], [(w["okx"][0], 0), (USER[1], 900)]) == []


def test_unbalanced_transactions_are_refused():
    tx = Tx("0b" * 32, H, T, True, (("a", 10),), (("b", 5),), 1)
    with pytest.raises(ValueError, match="inputs 10 != outputs 5 \\+ fee 1"):
        classify_tx(tx, {"a": "binance"})


def test_eth_labels_work_the_same_way():
    labels = {r["address"]: r["exchange"] for r in read_labels("eth")}
    binance = "0x28c6c06298d514db089934071355e5743bf21d60"
    assert labels[binance] == "binance"
    tx = Tx("0xab:3", 19_000_000, T, True, ((binance, 5_000_000),), ((USER[0], 5_000_000),), 0)
    assert classify_tx(tx, labels) == [
        FlowRecord("0xab:3", "binance", 0, 5_000_000, 0, None, False, 19_000_000, T, 0)]


# --- properties -----------------------------------------------------------------------------------

LABELS = {"x1": "binance", "x2": "binance", "y1": "okx", "z1": "kraken", "z2": "kraken"}
ADDRESSES = [*LABELS, "u1", "u2", "u3", None]


@st.composite
def transactions(draw):
    value = st.integers(min_value=0, max_value=3 * 10**9)
    outputs = draw(st.lists(st.tuples(st.sampled_from(ADDRESSES), value), min_size=1, max_size=6))
    if draw(st.integers(0, 9)) == 0:  # coinbase
        return Tx(draw(st.text("0123456789abcdef", min_size=4, max_size=4)), H, T, True, (), tuple(outputs), 0)
    inputs = draw(st.lists(st.tuples(st.sampled_from(ADDRESSES[:-1]), value), min_size=1, max_size=6))
    fee = draw(st.integers(0, 50_000))
    deficit = sum(v for _, v in outputs) + fee - sum(v for _, v in inputs)
    if deficit > 0:  # top up with one more input so the transaction balances
        inputs.append((draw(st.sampled_from(ADDRESSES[:-1])), deficit))
    else:
        fee -= deficit
    txid = draw(st.text("0123456789abcdef", min_size=4, max_size=4))
    return Tx(txid, H, T, True, tuple(inputs), tuple(outputs), fee)


def totals(tx: Tx) -> tuple[dict, dict]:
    spent, received = defaultdict(int), defaultdict(int)
    for a, v in tx.inputs:
        if a in LABELS:
            spent[LABELS[a]] += v
    for a, v in tx.outputs:
        if a in LABELS:
            received[LABELS[a]] += v
    return spent, received


@settings(max_examples=500, deadline=None)
@given(transactions())
def test_conservation_every_labelled_satoshi_is_accounted_for(tx):
    """For every exchange X: in[X] = internal + outflow + fee share, out[X] = internal + inflow (exact)."""
    records = classify_tx(tx, LABELS)
    spent, received = totals(tx)
    per = defaultdict(lambda: defaultdict(int))
    for r in records:
        for field in ("inflow_sat", "outflow_sat", "internal_sat", "fee_sat"):
            per[r.exchange][field] += getattr(r, field)
    for x in set(spent) | set(received) | set(per):
        p = per[x]
        assert spent[x] == p["internal_sat"] + p["outflow_sat"] + p["fee_sat"], x
        assert received[x] == p["internal_sat"] + p["inflow_sat"], x
    # Fee shares never exceed the fee, and the whole fee is shared when only exchanges paid.
    fee_shares = sum(r.fee_sat for r in records)
    assert fee_shares <= tx.fee
    if tx.inputs and all(a in LABELS for a, _ in tx.inputs):
        assert fee_shares == tx.fee


@settings(max_examples=300, deadline=None)
@given(transactions())
def test_records_are_well_formed_symmetric_and_sorted(tx):
    records = classify_tx(tx, LABELS)
    assert records == sorted(records, key=lambda r: (r.exchange, r.counterparty_exchange or ""))
    pairs = {}
    for r in records:
        assert r.txid == tx.txid and r.exchange in LABELS.values()
        assert min(r.inflow_sat, r.outflow_sat, r.internal_sat, r.fee_sat) >= 0
        assert r.inflow_sat or r.outflow_sat or r.internal_sat or r.fee_sat
        assert r.exchange_to_exchange == (r.counterparty_exchange is not None)
        assert r.counterparty_exchange != r.exchange
        if r.exchange_to_exchange:
            assert r.internal_sat == r.fee_sat == 0
            pairs[r.exchange, r.counterparty_exchange] = (r.outflow_sat, r.inflow_sat)
    for (x, y), (sent, got) in pairs.items():
        assert pairs[y, x] == (got, sent)  # X->Y outflow is Y's inflow from X, and vice versa


@settings(max_examples=300, deadline=None)
@given(transactions(), st.randoms(use_true_random=False))
def test_deterministic_order_independent_and_equal_to_the_reference(tx, rnd):
    first = classify_tx(tx, LABELS)
    assert classify_tx(tx, LABELS) == first  # re-processing the same tx gives identical records
    assert classify_tx_naive(tx, LABELS) == first  # fast paths change nothing
    ins, outs = list(tx.inputs), list(tx.outputs)
    rnd.shuffle(ins)
    rnd.shuffle(outs)
    shuffled = Tx(tx.txid, tx.block_height, tx.block_time, tx.confirmed, tuple(ins), tuple(outs), tx.fee)
    assert classify_tx(shuffled, LABELS) == first


@settings(max_examples=200, deadline=None)
@given(transactions())
def test_multi_owner_splits_stay_within_rounding_of_exact_pro_rata(tx):
    """Each source's part of a destination is within (destinations + 1) units of the exact proportional share."""
    spent, received = totals(tx)
    internal = {x: min(spent[x], received[x]) for x in set(spent) | set(received)}
    sources = {x: spent[x] - internal[x] for x in spent if spent[x] > internal[x]}
    unlabelled_in = sum(v for a, v in tx.inputs if a not in LABELS) if tx.inputs else (
        sum(v for _, v in tx.outputs) + tx.fee)
    total = sum(sources.values()) + unlabelled_in
    dests = sum(1 for x in received if received[x] > internal[x]) + 2
    if not sources or not total:
        return
    unlabelled_out = sum(v for a, v in tx.outputs if a not in LABELS)
    for r in classify_tx(tx, LABELS):
        if r.exchange in sources and not r.exchange_to_exchange:
            share = Fraction(sources[r.exchange], total)
            assert abs(r.outflow_sat - unlabelled_out * share) <= dests
            assert abs(r.fee_sat - tx.fee * share) <= dests


@settings(max_examples=50, deadline=None)
@given(st.lists(transactions(), max_size=20))
def test_classify_many_is_the_concatenation_in_order(txs):
    assert classify_many(txs, LABELS) == [r for tx in txs for r in classify_tx(tx, LABELS)]
