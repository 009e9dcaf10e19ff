import pytest

from apps.flows.accounting import FlowRecord, classify_tx
from apps.flows.addresses import keccak256
from apps.flows.erc20 import (
    TRANSFER_TOPIC,
    USDC,
    USDT,
    parse_transfer_log,
    token_decimals,
    transfers_by_token,
)
from apps.flows.esplora import MalformedTx, Tx
from apps.flows.reorg import DeepReorg, find_fork_point, heights_to_roll_back

BINANCE_14 = "0x28c6c06298d514db089934071355e5743bf21d60"
USER = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
TX_HASH = "0x" + "ab" * 32


def word(address: str) -> str:
    return "0x" + "0" * 24 + address[2:]


def log(sender=USER, receiver=BINANCE_14, value=1_500_000_000, token=USDT, index="0x1f", **extra) -> dict:
    base = {
        "address": token,
        "topics": [TRANSFER_TOPIC, word(sender), word(receiver)],
        "data": "0x" + f"{value:064x}",
        "blockNumber": "0x121eac0",
        "transactionHash": TX_HASH,
        "transactionIndex": "0x4",
        "blockHash": "0x" + "cd" * 32,
        "logIndex": index,
        "removed": False,
    }
    return {**base, **extra}


def test_transfer_topic_is_keccak_of_the_event_signature():
    assert "0x" + keccak256(b"Transfer(address,address,uint256)").hex() == TRANSFER_TOPIC


def test_known_token_decimals():
    assert token_decimals(USDT) == 6 and token_decimals(USDC.upper().replace("0X", "0x")) == 6
    assert token_decimals("0x" + "11" * 20) is None


def test_a_usdt_deposit_log_becomes_a_single_input_single_output_tx_and_an_inflow():
    transfer = parse_transfer_log(log(), block_times={0x121EAC0: 1_719_000_011})
    assert transfer.token == USDT and transfer.log_index == 31 and not transfer.removed
    assert transfer.tx == Tx(f"{TX_HASH}:31", 0x121EAC0, 1_719_000_011, True,
                             ((USER, 1_500_000_000),), ((BINANCE_14, 1_500_000_000),), 0)
    assert classify_tx(transfer.tx, {BINANCE_14: "binance"}) == [
        FlowRecord(f"{TX_HASH}:31", "binance", 1_500_000_000, 0, 0, None, False, 0x121EAC0, 1_719_000_011, 0)]


def test_block_timestamp_from_the_node_and_pending_logs():
    assert parse_transfer_log(log(blockTimestamp="0x667c3a0b")).tx.block_time == 0x667C3A0B
    assert parse_transfer_log(log()).tx.block_time is None
    pending = parse_transfer_log(log(blockNumber=None)).tx
    assert (pending.confirmed, pending.block_height, pending.block_time) == (False, None, None)


def test_uint256_values_are_exact_and_addresses_lowercase():
    t = parse_transfer_log(log(value=2**256 - 1, sender=USER.upper().replace("0X", "0x")))
    assert t.tx.inputs == ((USER, 2**256 - 1),)


def test_grouping_by_token_skips_removed_logs():
    logs = [log(index="0x1"), log(token=USDC, index="0x2"), log(index="0x3", removed=True), log(index="0x4")]
    grouped = transfers_by_token(logs)
    assert {k: [t.txid for t in v] for k, v in grouped.items()} == {
        USDT: [f"{TX_HASH}:1", f"{TX_HASH}:4"], USDC: [f"{TX_HASH}:2"]}


@pytest.mark.parametrize(("bad", "reason"), [
    ({"topics": [TRANSFER_TOPIC, word(USER), word(BINANCE_14), "0x" + "00" * 32]}, "ERC-721 Transfer"),
    ({"topics": ["0x" + "11" * 32, word(USER), word(BINANCE_14)]}, "topics[0] is not the Transfer event"),
    ({"topics": [TRANSFER_TOPIC, word(USER)]}, "Transfer with 2 topics, expected 3"),
    ({"topics": [TRANSFER_TOPIC, "0x" + "ff" * 32, word(BINANCE_14)]}, "topics[1] is not a left-padded address"),
    ({"topics": []}, "topics is not a non-empty list"),
    ({"data": "0x1234"}, "data is not 32 bytes of hex"),
    ({"data": "1234"}, "data is not 0x-prefixed hex"),
    ({"address": "0x1234"}, "address is not 20 bytes of hex"),
    ({"logIndex": "12"}, "logIndex is not a hex quantity"),
    ({"blockNumber": 123}, "blockNumber is not a hex quantity"),
    ({"removed": "no"}, "removed is not a boolean"),
    ({"transactionHash": "0x12"}, "transactionHash is not 32 bytes of hex"),
])
def test_malformed_logs_raise_with_reasons(bad, reason):
    with pytest.raises(MalformedTx) as err:
        parse_transfer_log(log(**bad))
    assert err.value.reason.startswith(reason)


def test_missing_fields_and_position_in_a_batch():
    broken = log()
    del broken["data"]
    with pytest.raises(MalformedTx, match="missing data"):
        parse_transfer_log(broken)
    with pytest.raises(MalformedTx, match=r"log \[1\]: missing data"):
        transfers_by_token([log(), broken])


# --- reorgs ---------------------------------------------------------------------------------------

STORED = {100: "a100", 101: "a101", 102: "a102", 103: "a103"}


def test_no_reorg_when_the_chains_agree_where_they_overlap():
    assert find_fork_point(STORED, {102: "a102", 103: "A103", 104: "a104"}) is None
    assert find_fork_point(STORED, {104: "a104"}) is None  # no overlap: nothing visible


def test_fork_point_is_the_last_shared_block_below_the_first_difference():
    incoming = {100: "a100", 101: "a101", 102: "b102", 103: "b103", 104: "b104"}
    assert find_fork_point(STORED, incoming) == 101
    assert heights_to_roll_back(STORED, 101) == [102, 103]
    # A shorter but heavier chain: the stored tip above the new one is stale too.
    assert find_fork_point(STORED, {101: "a101", 102: "b102"}) == 101
    assert heights_to_roll_back(STORED, 101) == [102, 103]


def test_a_fork_below_the_overlap_asks_for_more_history():
    with pytest.raises(DeepReorg, match="fetch blocks below 102"):
        find_fork_point(STORED, {102: "b102", 103: "b103"})
