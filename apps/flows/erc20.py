"""ERC-20 ``Transfer`` event logs (``eth_getLogs``) -> the same :class:`Tx` shape as Bitcoin (pure).

A log is ``Transfer(address indexed from, address indexed to, uint256 value)``:
``topics[0]`` = keccak256("Transfer(address,address,uint256)"), ``topics[1]``/``topics[2]`` are
the sender and receiver left-padded to 32 bytes, ``data`` is the value as a 32-byte big-endian
uint256 in the token's smallest unit. Each log becomes one Tx with a single input (from, value)
and a single output (to, value), fee 0 (gas is paid in ETH, outside the token's flow), and
txid ``"<transactionHash>:<logIndex>"`` because one transaction can emit many transfers.
Addresses are lowercase. Mints come from, and burns go to, the zero address, which is unlabelled.

ERC-721 shares the event signature but indexes the token id (4 topics); such logs are rejected.
Logs do not carry a block time unless the node adds ``blockTimestamp``; otherwise pass
``block_times`` (height -> unix seconds) from the block headers, or the Tx has ``block_time`` None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from apps.flows.esplora import MalformedTx, Tx

__all__ = [
    "TOKEN_DECIMALS",
    "TRANSFER_TOPIC",
    "USDC",
    "USDT",
    "TokenTransfer",
    "parse_transfer_log",
    "token_decimals",
    "transfers_by_token",
]

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
TOKEN_DECIMALS = {USDT: 6, USDC: 6}
_HEX = frozenset("0123456789abcdef")


def token_decimals(token: str) -> int | None:
    """Decimals of a known token contract (lowercase address), None when unknown."""
    return TOKEN_DECIMALS.get(token.lower())


@dataclass(frozen=True, slots=True)
class TokenTransfer:
    """One parsed Transfer log: the token contract, the transfer as a Tx, and the reorg flag."""

    token: str
    tx: Tx
    log_index: int
    removed: bool


def _hex_word(value: object, where: str, nbytes: int) -> str:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise MalformedTx(f"{where} is not 0x-prefixed hex")
    body = value[2:].lower()
    if len(body) != 2 * nbytes or not _HEX.issuperset(body):
        raise MalformedTx(f"{where} is not {nbytes} bytes of hex")
    return body


def _quantity(value: object, where: str) -> int:
    """A JSON-RPC quantity: 0x-prefixed hex without leading zeros (leniently, with them)."""
    if not isinstance(value, str) or not value.startswith("0x") or len(value) < 3 or len(value) > 18:
        raise MalformedTx(f"{where} is not a hex quantity")
    body = value[2:].lower()
    if not _HEX.issuperset(body):
        raise MalformedTx(f"{where} is not a hex quantity")
    return int(body, 16)


def _topic_address(value: object, where: str) -> str:
    body = _hex_word(value, where, 32)
    if body[:24] != "0" * 24:
        raise MalformedTx(f"{where} is not a left-padded address")
    return "0x" + body[24:]


def parse_transfer_log(log: Mapping, *, block_times: Mapping[int, int] | None = None) -> TokenTransfer:
    """One ``eth_getLogs`` entry -> :class:`TokenTransfer`, or :class:`MalformedTx` with the reason."""
    if not isinstance(log, Mapping):
        raise MalformedTx("log is not an object")
    for key in ("address", "topics", "data", "transactionHash", "logIndex"):
        if key not in log:
            raise MalformedTx(f"missing {key}")
    token = "0x" + _hex_word(log["address"], "address", 20)
    topics = log["topics"]
    if not isinstance(topics, list) or not topics:
        raise MalformedTx("topics is not a non-empty list")
    if "0x" + _hex_word(topics[0], "topics[0]", 32) != TRANSFER_TOPIC:
        raise MalformedTx("topics[0] is not the Transfer event")
    if len(topics) == 4:
        raise MalformedTx("ERC-721 Transfer (token id indexed), not ERC-20")
    if len(topics) != 3:
        raise MalformedTx(f"Transfer with {len(topics)} topics, expected 3")
    sender = _topic_address(topics[1], "topics[1]")
    receiver = _topic_address(topics[2], "topics[2]")
    value = int(_hex_word(log["data"], "data", 32), 16)
    tx_hash = "0x" + _hex_word(log["transactionHash"], "transactionHash", 32)
    log_index = _quantity(log["logIndex"], "logIndex")
    removed = log.get("removed", False)
    if not isinstance(removed, bool):
        raise MalformedTx("removed is not a boolean")

    raw_height = log.get("blockNumber")
    height = None if raw_height is None else _quantity(raw_height, "blockNumber")
    block_time = None
    if height is not None:
        if log.get("blockTimestamp") is not None:
            block_time = _quantity(log["blockTimestamp"], "blockTimestamp")
        elif block_times is not None:
            block_time = block_times.get(height)
    tx = Tx(f"{tx_hash}:{log_index}", height, block_time, height is not None,
            ((sender, value),), ((receiver, value),), 0)
    return TokenTransfer(token, tx, log_index, removed)


def transfers_by_token(logs: Iterable[Mapping], *, block_times: Mapping[int, int] | None = None,
                       ) -> dict[str, list[Tx]]:
    """Parse logs and group the transfers per token contract, in log order.

    Logs flagged ``removed`` (their block was reorganised away) are left out; callers that stored
    them earlier drop them by txid. The first malformed log raises, naming its position.
    """
    out: dict[str, list[Tx]] = {}
    for i, log in enumerate(logs):
        try:
            transfer = parse_transfer_log(log, block_times=block_times)
        except MalformedTx as exc:
            raise MalformedTx(f"log [{i}]: {exc.reason}") from None
        if not transfer.removed:
            out.setdefault(transfer.token, []).append(transfer.tx)
    return out
