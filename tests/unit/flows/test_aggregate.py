import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.flows.accounting import FlowRecord, classify_many
from apps.flows.aggregate import (
    add_usd,
    dedupe_records,
    flows_by_block,
    flows_by_hour,
    netflow_zscore,
    whale_ratio,
)
from apps.flows.esplora import Tx

T0 = 1_719_000_000 - 1_719_000_000 % 3600  # an hour boundary


def r(txid, exchange, inflow=0, outflow=0, internal=0, cp=None, height=850_000, t=T0, fee=0):
    return FlowRecord(txid, exchange, inflow, outflow, internal, cp, cp is not None, height, t, fee)


def row(frame, exchange, **key):
    sel = frame["exchange"] == exchange
    for k, v in key.items():
        sel &= frame[k] == v
    assert sel.sum() == 1
    return frame[sel].iloc[0]


def test_hourly_sums_counts_means_and_zero_filled_gaps():
    records = [
        r("a", "binance", inflow=100, t=T0 + 10),
        r("b", "binance", inflow=300, t=T0 + 20),
        r("c", "binance", outflow=50, internal=7, fee=3, t=T0 + 30),
        r("d", "okx", inflow=40, t=T0 + 2 * 3600 + 5),  # hour 1 has no flows at all
    ]
    h = flows_by_hour(records, include_all=False)
    assert list(h.columns) == ["exchange", "bucket_start", "inflow", "outflow", "netflow", "internal", "fee",
                               "inflow_txs", "outflow_txs", "mean_inflow", "whale_ratio", "netflow_z"]
    hours = pd.to_datetime([T0, T0 + 3600, T0 + 7200], unit="s", utc=True)
    assert list(h["bucket_start"][h["exchange"] == "binance"]) == list(hours)
    b0 = row(h, "binance", bucket_start=hours[0])
    assert (b0.inflow, b0.outflow, b0.netflow, b0.internal, b0.fee) == (400, 50, 350, 7, 3)
    assert (b0.inflow_txs, b0.outflow_txs, b0.mean_inflow) == (2, 1, 200.0)
    b1 = row(h, "binance", bucket_start=hours[1])
    assert (b1.inflow, b1.outflow, b1.inflow_txs) == (0, 0, 0)
    assert math.isnan(b1.mean_inflow) and math.isnan(b1.whale_ratio)
    assert row(h, "okx", bucket_start=hours[2]).inflow == 40
    assert row(h, "okx", bucket_start=hours[0]).inflow == 0


def test_counterparty_records_of_one_tx_count_as_one_inflow():
    records = [r("a", "kraken", inflow=5), r("a", "kraken", inflow=7, cp="okx"), r("a", "okx", outflow=7, cp="kraken")]
    h = flows_by_hour(records, include_all=False)
    k = row(h, "kraken")
    assert (k.inflow, k.inflow_txs, k.mean_inflow) == (12, 1, 12.0)


def test_all_exchanges_treat_exchange_to_exchange_as_internal():
    records = [
        r("a", "binance", inflow=100),  # user -> binance
        r("b", "okx", internal=5, fee=1),  # okx -> kraken with change
        r("b", "okx", outflow=60, cp="kraken"),
        r("b", "kraken", inflow=60, cp="okx"),
        r("c", "kraken", outflow=30, fee=2),  # kraken -> user
    ]
    a = row(flows_by_hour(records), "all")
    assert (a.inflow, a.outflow, a.netflow, a.internal, a.fee) == (100, 30, 70, 65, 3)
    assert (a.inflow_txs, a.outflow_txs) == (1, 1)
    k = row(flows_by_hour(records), "kraken")
    assert (k.inflow, k.outflow, k.netflow) == (60, 30, 30)


def test_whale_ratio_top_n_and_fewer_than_n_inflows():
    assert whale_ratio([5, 1, 4, 0, 10], n=2) == pytest.approx(15 / 20)
    assert whale_ratio([5, 1], n=10) == 1.0  # fewer inflows than N: all of them are the top N
    assert math.isnan(whale_ratio([], n=10))
    records = [r(str(i), "okx", inflow=v) for i, v in enumerate([1, 2, 3, 100])]
    assert row(flows_by_hour(records, whale_n=2, include_all=False), "okx").whale_ratio == pytest.approx(103 / 106)
    assert row(flows_by_hour(records, whale_n=10, include_all=False), "okx").whale_ratio == 1.0


def test_zscore_of_a_constant_series_is_nan_never_inf():
    for value in (0, 7, 2 * 10**15, -(10**12)):
        z = netflow_zscore(pd.Series([value] * 50), window=10)
        assert z.isna().all()
        assert not np.isinf(z).any()


def test_zscore_uses_the_preceding_window_only_and_waits_for_history():
    values = pd.Series([1, 2, 3, 4, 5, 6, 100], dtype="int64")
    z = netflow_zscore(values, window=5)
    assert z[:5].isna().all()  # fewer than 5 earlier buckets
    prior = values[0:5]
    assert z[5] == pytest.approx((6 - prior.mean()) / prior.std(ddof=1))
    prior = values[1:6]
    assert z[6] == pytest.approx((100 - prior.mean()) / prior.std(ddof=1))
    assert netflow_zscore(values, window=5, min_periods=2)[2] == pytest.approx((3 - 1.5) / np.std([1, 2], ddof=1))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(10**15), 10**15), min_size=1, max_size=60), st.integers(2, 10))
def test_zscore_is_finite_or_nan(values, window):
    z = netflow_zscore(pd.Series(values, dtype="int64"), window=window, min_periods=2)
    assert not np.isinf(z.to_numpy()).any()


def test_hourly_zscore_window_counts_empty_hours():
    records = [r(f"t{i}", "okx", inflow=10 + i % 2, t=T0 + i * 3600) for i in range(0, 40, 2)]
    h = flows_by_hour(records, z_window=6, include_all=False)
    assert len(h) == 39  # every hour from the first to the last, flows or not
    assert h["netflow_z"][:6].isna().all() and h["netflow_z"][6:].notna().all()


def test_reprocessing_the_same_transactions_is_idempotent():
    labels = {"x": "binance", "y": "okx"}
    txs = [Tx(f"{i:02x}", 850_000 + i, T0 + 600 * i, True, (("u", 1_000 + i),), (("x", 900), ("y", 50 + i)), 50)
           for i in range(12)]
    once = classify_many(txs, labels)
    twice = once + classify_many(txs[3:7], labels) + once
    pd.testing.assert_frame_equal(flows_by_hour(twice), flows_by_hour(once))
    pd.testing.assert_frame_equal(flows_by_block(twice), flows_by_block(once))


def test_the_same_transaction_classified_twice_in_a_row_counts_once():
    labels = {"x": "binance", "y": "okx", "z": "kraken"}
    tx = Tx("aa", 850_000, T0, True, (("x", 1_000),), (("y", 400), ("z", 500), ("u", 50)), 50)
    records = classify_many([tx, tx, tx], labels)
    assert len(records) == 3 * 5
    assert dedupe_records(records).equals(dedupe_records(records[:5]))
    pd.testing.assert_frame_equal(flows_by_hour(records), flows_by_hour(records[:5]))


def test_a_reprocessed_transaction_keeps_its_latest_block():
    before = [r("a", "binance", inflow=10, height=1, t=T0), r("a", "okx", inflow=5, height=1, t=T0)]
    after = [r("a", "binance", inflow=10, height=2, t=T0 + 3600), r("a", "okx", inflow=5, height=2, t=T0 + 3600)]
    frame = dedupe_records([*before, r("b", "okx", inflow=1), *after])
    assert sorted(zip(frame["txid"], frame["exchange"], frame["block_height"], strict=True)) == [
        ("a", "binance", 2), ("a", "okx", 2), ("b", "okx", 850_000)]
    h = flows_by_hour([*before, *after], include_all=False)
    assert list(h["inflow"]) == [10, 5]  # binance, okx: only in the later hour
    assert set(h["bucket_start"]) == {pd.Timestamp(T0 + 3600, unit="s", tz="UTC")}


def test_aggregation_does_not_depend_on_record_order():
    records = [r("a", "binance", inflow=10), r("b", "okx", outflow=4, t=T0 + 4000), r("a", "okx", inflow=3),
               r("c", "okx", internal=9, fee=1), r("c", "okx", outflow=5, cp="binance"),
               r("c", "binance", inflow=5, cp="okx")]
    pd.testing.assert_frame_equal(flows_by_hour(records), flows_by_hour(records[::-1]))


def test_unconfirmed_and_timeless_records_are_left_out():
    records = [r("a", "okx", inflow=10), r("b", "okx", inflow=99, height=None, t=None), r("c", "okx", inflow=7, t=None)]
    assert row(flows_by_hour(records, include_all=False), "okx").inflow == 10
    assert flows_by_block(records, include_all=False)["inflow"].sum() == 17  # c has a block, just no time


def test_per_block_series():
    records = [r("a", "okx", inflow=10, height=100, t=T0), r("b", "okx", outflow=4, height=103, t=T0 + 1800)]
    b = flows_by_block(records, z_window=2, include_all=False)
    assert list(b["block_height"]) == [100, 101, 102, 103]
    assert list(b["netflow"]) == [10, 0, 0, -4]
    assert b["block_time"][0] == T0 and math.isnan(b["block_time"][1])
    assert b["netflow_z"][:2].isna().all()


def test_token_amounts_beyond_int64_stay_exact():
    big = 10**24  # a million tokens with 18 decimals
    records = [r("a", "binance", inflow=big + 1), r("b", "binance", inflow=big), r("c", "binance", outflow=1)]
    b = row(flows_by_hour(records, include_all=False), "binance")
    assert b.inflow == 2 * big + 1 and b.netflow == 2 * big
    assert isinstance(b.inflow, int)


def test_large_outflows_with_an_exchange_to_exchange_transfer_stay_exact():
    # Outflows whose sum could pass int64 become Python ints; the transfer then moves an outflow
    # into the internal column, which must take it (it once raised: int64 column, object value).
    big = 2**61
    records = [r(f"w{i}", "binance", outflow=big + i) for i in range(4)]
    records += [r("x", "binance", outflow=big, cp="kraken"), r("x", "kraken", inflow=big, cp="binance")]
    a = row(flows_by_hour(records), "all")
    assert a.outflow == 4 * big + 6 and a.internal == big and a.inflow == 0
    b = row(flows_by_hour(records), "binance")
    assert b.outflow == 5 * big + 6


def test_usd_conversion_uses_the_hours_close_and_leaves_gaps():
    records = [r("a", "okx", inflow=2 * 10**8, height=1, t=T0 + 5), r("b", "okx", outflow=10**8, height=9, t=T0 + 7200)]
    h = flows_by_hour(records, include_all=False)
    close = pd.Series([60_000.0, 61_000.0], index=pd.to_datetime([T0, T0 + 3600], unit="s", utc=True))
    usd = add_usd(h, close, decimals=8)
    assert list(usd["inflow_usd"][:2]) == [120_000.0, 0.0]
    assert list(usd["netflow_usd"][:2]) == [120_000.0, 0.0]
    assert math.isnan(usd["price_usd"][2]) and math.isnan(usd["netflow_usd"][2])  # no close for that hour
    blocks = add_usd(flows_by_block(records, include_all=False), close, decimals=8)
    assert blocks["inflow_usd"].iloc[0] == 120_000.0
    with pytest.raises(ValueError, match="more than one close per hour"):
        add_usd(h, pd.concat([close, close]), decimals=8)


def test_no_records_give_an_empty_frame():
    assert flows_by_hour([]).empty
    assert flows_by_block([]).empty
