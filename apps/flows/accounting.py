"""Exchange flow accounting for one transaction at a time (pure, no ORM, exact integers).

Input: a :class:`~apps.flows.esplora.Tx` (Bitcoin, or an ERC-20 transfer in the same shape) and a
mapping *address -> exchange slug* of labelled addresses. Every other address, and outputs without
an address, belong to the *unlabelled* world U (many unknown owners, never netted against itself).

The rules, per transaction
--------------------------

1. ``in[X]`` = value of the inputs owned by exchange X, ``out[X]`` = value of the outputs paying X.
   A coinbase (no inputs) creates ``outputs + fee`` from nothing; that new coin counts as an
   unlabelled input.

2. **Internal first (change).** When X spends, what comes back to X is its own money moving:
   ``internal[X] = min(in[X], out[X])``. This is the change output of a withdrawal, or the whole
   of a consolidation/sweep between X's own addresses. Internal value is reported, never counted
   as inflow or outflow.

3. What is left is X's **net spend** ``in[X] - internal[X]`` or its **net receipt**
   ``out[X] - internal[X]`` (at most one of them is positive). Net spenders plus the unlabelled
   inputs are the *sources*; net receivers, the unlabelled outputs and the fee are the
   *destinations*. Both sides add up to the same total.

4. **Pro-rata by input value.** Every destination is funded by the sources in proportion to what
   they put in (each source's share of what is still unallocated, destinations taken in a fixed
   order: exchanges by slug, then unlabelled outputs, then the fee; rounding by largest remainder,
   ties to the earlier source). So an amount ``m`` from source S to destination D is:

   - S = X, D = U: **outflow** of X;
   - S = U, D = Y: **inflow** of Y;
   - S = X, D = Y (another exchange): outflow of X *and* inflow of Y, both flagged
     ``exchange_to_exchange`` with each other as counterparty;
   - S = X, D = fee: X's **fee share**, neither inflow nor outflow (reported as ``fee_sat``);
   - S = U, D = U: not an exchange flow, ignored.

   With a single source (deposits, ordinary withdrawals and consolidations: nearly every real
   transaction) this is just: every output not paying X is X's outflow and the whole fee is X's.

Conservation (exact, in integers) for every exchange X and transaction::

    in[X]  = internal[X] + outflow[X] + fee[X]      (every satoshi X spent is accounted for)
    out[X] = internal[X] + inflow[X]                (every satoshi X received is accounted for)

where outflow and inflow include the exchange-to-exchange parts.

Records: one :class:`FlowRecord` per (exchange, counterparty); counterparty None carries the
flows with the unlabelled world plus X's internal and fee; counterparty Y carries X<->Y. Records
whose amounts are all zero are not emitted (so zero-value token transfers, e.g. address-poisoning
spam, produce nothing). Order: by exchange, then counterparty (None first).

Exchange slugs must be non-empty. A non-coinbase transaction whose inputs differ from outputs plus
fee raises ValueError (the parsers never produce one). Single-source transactions take a fast path
that gives the same records as the general allocation (:func:`classify_tx_naive`, tested equal);
``python -m bench.flows`` measures both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from apps.flows.esplora import Tx

__all__ = ["FlowRecord", "classify_many", "classify_tx", "classify_tx_naive"]

_U = ""  # the unlabelled world; exchange slugs are never empty
_FEE = "\x00fee"


class FlowRecord(NamedTuple):
    """Flows of one exchange in one transaction, with one counterparty (None: the unlabelled world).

    Amounts are integers in the chain's base unit (satoshis, or token units for ERC-20).
    ``fee_sat`` is the exchange's share of the fee: neither inflow nor outflow.
    """

    txid: str
    exchange: str
    inflow_sat: int
    outflow_sat: int
    internal_sat: int
    counterparty_exchange: str | None
    exchange_to_exchange: bool
    block_height: int | None
    block_time: int | None
    fee_sat: int = 0


def _order(record: FlowRecord) -> tuple[str, str]:
    return record.exchange, record.counterparty_exchange or ""


def _apportion(amount: int, weights: list[int]) -> list[int]:
    """Split ``amount`` (<= sum(weights)) in proportion to ``weights``; largest remainder, ties to the first."""
    total = sum(weights)
    if amount == total:
        return list(weights)
    shares = [amount * w // total for w in weights]
    left = amount - sum(shares)
    if left:
        ranked = sorted(range(len(weights)), key=lambda i: (-(amount * weights[i] % total), i))
        for i in ranked[:left]:
            shares[i] += 1
    return shares


def _allocate(sources: list[tuple[str, int]], dests: list[tuple[str, int]]) -> dict[tuple[str, str], int]:
    """Pro-rata funding of ``dests`` by ``sources`` (equal totals): {(source, dest): amount > 0}."""
    remaining = [amount for _, amount in sources]
    flows: dict[tuple[str, str], int] = {}
    for dest, amount in dests:
        shares = _apportion(amount, remaining)
        for (source, _), share in zip(sources, shares, strict=True):
            if share:
                flows[source, dest] = share
        remaining = [r - s for r, s in zip(remaining, shares, strict=True)]
    return flows


def _records_from_flows(
    tx: Tx, owners: list[str], internal: dict[str, int], flows: dict[tuple[str, str], int]
) -> list[FlowRecord]:
    out = []
    h, t, txid = tx.block_height, tx.block_time, tx.txid
    for x in owners:
        inflow, outflow, fee, own = flows.get((_U, x), 0), flows.get((x, _U), 0), flows.get((x, _FEE), 0), internal[x]
        if inflow or outflow or fee or own:
            out.append(FlowRecord(txid, x, inflow, outflow, own, None, False, h, t, fee))
        for y in owners:
            if y != x:
                sent, got = flows.get((x, y), 0), flows.get((y, x), 0)
                if sent or got:
                    out.append(FlowRecord(txid, x, got, sent, 0, y, True, h, t, 0))
    return out


def _balanced_totals(tx: Tx, total_in: int, total_out: int) -> int:
    """Unlabelled new coin of a coinbase; raises when a non-coinbase tx does not balance."""
    if not tx.inputs:
        return total_out + tx.fee
    if total_in != total_out + tx.fee:
        raise ValueError(f"tx {tx.txid}: inputs {total_in} != outputs {total_out} + fee {tx.fee}")
    return 0


def _by_owner(pairs, get) -> tuple[dict[str, int], int]:
    """The value of (address, value) pairs per labelled owner, and the unlabelled rest."""
    by: dict[str, int] = {}
    rest = 0
    for addr, value in pairs:
        owner = get(addr)
        if owner is None:
            rest += value
        else:
            by[owner] = by.get(owner, 0) + value
    return by, rest


def classify_tx(tx: Tx, labels: Mapping[str, str]) -> list[FlowRecord]:
    """Per-exchange flows of one transaction (see the module docstring for the rules)."""
    in_by, u_in = _by_owner(tx.inputs, labels.get)
    out_by, u_out = _by_owner(tx.outputs, labels.get)
    if not in_by and not out_by:
        return []
    labelled_in = sum(in_by.values())
    labelled_out = sum(out_by.values())
    u_in += _balanced_totals(tx, u_in + labelled_in, u_out + labelled_out)
    h, t, txid, fee = tx.block_height, tx.block_time, tx.txid, tx.fee

    if not in_by:
        # Only the unlabelled world pays: every labelled output is inflow (a deposit).
        records = [FlowRecord(txid, y, v, 0, 0, None, False, h, t, 0) for y, v in out_by.items() if v]
    elif len(in_by) == 1 and not u_in:
        # One exchange pays for everything: its outputs are change, the rest leaves it.
        ((x, _),) = in_by.items()
        own = out_by.get(x, 0)
        records = []
        if u_out or own or fee:
            records.append(FlowRecord(txid, x, 0, u_out, own, None, False, h, t, fee))
        for y, v in out_by.items():
            if y != x and v:
                records.append(FlowRecord(txid, x, 0, v, 0, y, True, h, t, 0))
                records.append(FlowRecord(txid, y, v, 0, 0, x, True, h, t, 0))
    else:
        return _classify_general(tx, in_by, out_by, u_in, u_out)
    if len(records) > 1:
        records.sort(key=_order)
    return records


def _classify_general(tx: Tx, in_by: dict[str, int], out_by: dict[str, int], u_in: int, u_out: int):
    owners = sorted(in_by.keys() | out_by.keys())
    internal = {x: min(in_by.get(x, 0), out_by.get(x, 0)) for x in owners}
    sources = [(x, in_by.get(x, 0) - internal[x]) for x in owners]
    dests = [(x, out_by.get(x, 0) - internal[x]) for x in owners]
    sources = [(k, v) for k, v in (*sources, (_U, u_in)) if v > 0]
    dests = [(k, v) for k, v in (*dests, (_U, u_out), (_FEE, tx.fee)) if v > 0]
    return _records_from_flows(tx, owners, internal, _allocate(sources, dests))


def classify_tx_naive(tx: Tx, labels: Mapping[str, str]) -> list[FlowRecord]:
    """The same rules without fast paths: the general allocation for every transaction.

    A reference for tests and the benchmark baseline; results equal :func:`classify_tx`.
    """
    in_by: dict[str, int] = {}
    out_by: dict[str, int] = {}
    u_in = u_out = 0
    for addr, value in tx.inputs:
        if addr in labels:
            in_by[labels[addr]] = in_by.get(labels[addr], 0) + value
        else:
            u_in += value
    for addr, value in tx.outputs:
        if addr in labels:
            out_by[labels[addr]] = out_by.get(labels[addr], 0) + value
        else:
            u_out += value
    total_in = u_in + sum(in_by.values())
    u_in += _balanced_totals(tx, total_in, u_out + sum(out_by.values()))
    return _classify_general(tx, in_by, out_by, u_in, u_out)


def classify_many(txs: Iterable[Tx], labels: Mapping[str, str]) -> list[FlowRecord]:
    """:func:`classify_tx` over many transactions, records in transaction order."""
    out: list[FlowRecord] = []
    extend = out.extend
    for tx in txs:
        extend(classify_tx(tx, labels))
    return out
