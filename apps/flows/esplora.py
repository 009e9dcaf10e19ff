"""Esplora / mempool.space transaction JSON -> :class:`Tx` (pure, no ORM, strict).

The accepted shape is Esplora's ``GET /api/tx/:txid`` object (also the items of
``/api/address/:address/txs``); mempool.space's extra fields (vsize, ancestors, firstSeen, ...)
are ignored. Only what flow accounting needs is kept: per input the spent output's address and
value (``vin[].prevout``), per output its address and value, the fee and the confirmation status.

Strictness: every amount must be a JSON integer (not a float, string or bool), non-negative and at
most 21 million BTC in satoshis, and ``fee`` must equal inputs minus outputs. Anything else raises
:class:`MalformedTx` with a reason naming the field, because a silently mis-parsed amount would
poison every netflow figure downstream.

A coinbase transaction has no spent outputs: its inputs are ``()`` and its fee 0, so what it pays
is newly created coin (flow accounting counts a coinbase payout to an exchange as inflow).
Addresses are kept as Esplora gives them (bech32 lowercase); outputs without an address
(OP_RETURN, bare multisig, P2PK) have ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson

__all__ = ["MAX_SATS", "MalformedTx", "Tx", "confirmations", "parse_tx", "parse_txs"]

MAX_SATS = 21_000_000 * 100_000_000
GENESIS_TIME = 1_231_006_505  # block 0; no block is older


class MalformedTx(ValueError):
    """A transaction object that cannot be trusted; ``reason`` says which field and why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Tx:
    """One transaction, reduced to what flow accounting needs.

    ``inputs`` and ``outputs`` are ``(address or None, value)`` pairs in the transaction's order;
    values are integers in the chain's base unit (satoshis for Bitcoin, token units for ERC-20).
    ``fee`` = sum(inputs) - sum(outputs) except for coinbase (no inputs, fee 0) and token transfers
    (fee 0: gas is paid in ETH, outside the token's flow).
    """

    txid: str
    block_height: int | None
    block_time: int | None
    confirmed: bool
    inputs: tuple[tuple[str | None, int], ...]
    outputs: tuple[tuple[str | None, int], ...]
    fee: int


_HEX = frozenset("0123456789abcdef")


def _amount(value: object, where: str, limit: int = MAX_SATS) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedTx(f"{where} is not an integer ({type(value).__name__})")
    if value < 0:
        raise MalformedTx(f"{where} is negative")
    if value > limit:
        raise MalformedTx(f"{where} exceeds 21 million BTC")
    return value


def _address(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise MalformedTx(f"{where} is not an address string")
    return value


def _field(obj: Mapping, key: str, where: str) -> object:
    try:
        return obj[key]
    except KeyError:
        raise MalformedTx(f"missing {where}{key}") from None


def _object(value: object, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise MalformedTx(f"{where} is not an object")
    return value


def _list(value: object, where: str) -> list:
    if not isinstance(value, list):
        raise MalformedTx(f"{where} is not a list")
    return value


def _int_at_least(value: object, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedTx(f"{where} is not an integer")
    if value < low:
        raise MalformedTx(f"{where} out of range")
    return value


def _json_loads(data: str | bytes):
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedTx(f"not JSON: {exc}") from None


def parse_tx(obj: Mapping | str | bytes) -> Tx:
    """One Esplora transaction (a decoded dict, or its JSON text) -> :class:`Tx`, or :class:`MalformedTx`."""
    if isinstance(obj, str | bytes):
        obj = _json_loads(obj)
    tx = _object(obj, "transaction")

    txid = _field(tx, "txid", "")
    if not isinstance(txid, str) or len(txid) != 64 or not _HEX.issuperset(txid):
        raise MalformedTx("txid is not 64 lowercase hex digits")
    inputs, coinbase = _inputs(tx)
    outputs = _outputs(tx)
    fee = _fee_checked(tx, inputs=inputs, outputs=outputs, coinbase=coinbase)
    confirmed, height, block_time = _status(tx)
    return Tx(txid, height, block_time, confirmed, tuple(inputs), tuple(outputs), fee)


def _inputs(tx: Mapping) -> tuple[list[tuple[str | None, int]], bool]:
    """The spent outputs (address, value) and whether the transaction is a coinbase (its only input)."""
    vin = _list(_field(tx, "vin", ""), "vin")
    if not vin:
        raise MalformedTx("vin is empty")
    inputs = []
    coinbase = False
    for i, raw in enumerate(vin):
        where = f"vin[{i}]"
        item = _object(raw, where)
        if item.get("is_coinbase") is True:
            if len(vin) != 1:
                raise MalformedTx("coinbase input in a transaction with several inputs")
            coinbase = True
            continue
        prevout = _object(_field(item, "prevout", f"{where}."), f"{where}.prevout")
        inputs.append((
            _address(prevout.get("scriptpubkey_address"), f"{where}.prevout.scriptpubkey_address"),
            _amount(_field(prevout, "value", f"{where}.prevout."), f"{where}.prevout.value"),
        ))
    return inputs, coinbase


def _outputs(tx: Mapping) -> list[tuple[str | None, int]]:
    vout = _list(_field(tx, "vout", ""), "vout")
    if not vout:
        raise MalformedTx("vout is empty")
    outputs = []
    for i, raw in enumerate(vout):
        where = f"vout[{i}]"
        item = _object(raw, where)
        outputs.append((
            _address(item.get("scriptpubkey_address"), f"{where}.scriptpubkey_address"),
            _amount(_field(item, "value", f"{where}."), f"{where}.value"),
        ))
    return outputs


def _fee_checked(tx: Mapping, *, inputs: list, outputs: list, coinbase: bool) -> int:
    """The fee, which must be what the inputs pay beyond the outputs (zero for a coinbase)."""
    fee = _amount(_field(tx, "fee", ""), "fee")
    total_in = sum(v for _, v in inputs)
    total_out = sum(v for _, v in outputs)
    if total_in > MAX_SATS or total_out > MAX_SATS:
        raise MalformedTx("total value exceeds 21 million BTC")
    if coinbase:
        if fee != 0:
            raise MalformedTx("coinbase transaction with a non-zero fee")
    elif total_in - total_out != fee:
        raise MalformedTx(f"fee {fee} != inputs {total_in} - outputs {total_out}")
    return fee


def _status(tx: Mapping) -> tuple[bool, int | None, int | None]:
    """Confirmed, and then the block's height and time."""
    status = _object(_field(tx, "status", ""), "status")
    confirmed = _field(status, "confirmed", "status.")
    if not isinstance(confirmed, bool):
        raise MalformedTx("status.confirmed is not a boolean")
    height = block_time = None
    if confirmed:
        height = _int_at_least(_field(status, "block_height", "status."), "status.block_height", 0)
        block_time = _int_at_least(_field(status, "block_time", "status."), "status.block_time", GENESIS_TIME)
    return confirmed, height, block_time


def parse_txs(items: Iterable | str | bytes) -> list[Tx]:
    """A JSON array of transactions (e.g. ``/api/address/:address/txs``); the first bad one raises."""
    if isinstance(items, str | bytes):
        items = _json_loads(items)
    if not isinstance(items, list):
        raise MalformedTx("transaction list is not a list")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(parse_tx(item))
        except MalformedTx as exc:
            raise MalformedTx(f"transaction [{i}]: {exc.reason}") from None
    return out


def confirmations(tx: Tx, tip_height: int) -> int:
    """Blocks on top of and including the tx's block: 1 when it is in the tip block, 0 when unconfirmed.

    A tip below the tx's block means our tip is stale or the block was reorganised away; either
    way the tx is not confirmed from where we stand, so that is 0 as well.
    """
    if not tx.confirmed or tx.block_height is None:
        return 0
    return max(0, tip_height - tx.block_height + 1)
