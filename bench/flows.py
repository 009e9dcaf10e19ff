"""Exchange-flow classification throughput: `python -m bench.flows [N]`, prints one JSON line.

Transactions are synthetic but shaped like the ones an exchange-address scan returns, using the
real labelled BTC addresses in data/wallet-labels/: deposits, batched withdrawals with change,
consolidations, exchange-to-exchange transfers, multi-owner inputs and unrelated payments.

Figures (all from this run): ``classify_many`` (the production path, fast paths for single-source
transactions) against the baseline ``classify_tx_naive`` (the same rules, general pro-rata
allocation for every transaction); Esplora JSON parsing; hourly aggregation of the records.
Both classifiers must produce identical records, or the benchmark fails.
"""

from __future__ import annotations

import csv
import json
import platform
import random
import sys
import time
from pathlib import Path

import orjson

from apps.flows.accounting import classify_many, classify_tx_naive
from apps.flows.aggregate import flows_by_hour
from apps.flows.esplora import Tx, parse_tx

ROOT = Path(__file__).resolve().parents[1]
GOAL_TX_PER_S = 100_000
START_TIME = 1_717_200_000  # 2024-06-01


def load_labels() -> dict[str, str]:
    with open(ROOT / "data" / "wallet-labels" / "btc_exchange_wallets.csv", newline="") as fh:
        return {r["address"]: r["exchange"] for r in csv.DictReader(fh)}


def synthetic_txs(n: int, labels: dict[str, str], seed: int = 7) -> list[Tx]:
    rng = random.Random(seed)
    by_exchange: dict[str, list[str]] = {}
    for address, exchange in labels.items():
        by_exchange.setdefault(exchange, []).append(address)
    exchanges = sorted(by_exchange)

    def ex_addr(x):
        return rng.choice(by_exchange[x])

    def user():
        return "bc1q" + "".join(rng.choices("qpzry9x8gf2tvdw0s3jn54khce6mua7l", k=38))

    def amount():
        return rng.randint(10_000, 5 * 10**8)

    txs = []
    for i in range(n):
        kind = rng.random()
        x, y = rng.sample(exchanges, 2)
        if kind < 0.35:  # deposit with change back to the user
            ins = [(user(), amount()) for _ in range(rng.randint(1, 2))]
            pay = sum(v for _, v in ins) // 2
            outs = [(ex_addr(x), pay)]
            change = sum(v for _, v in ins) - pay - 1_000
            outs.append((user(), change))
        elif kind < 0.55:  # batched withdrawal with change
            ins = [(ex_addr(x), amount() * 4) for _ in range(rng.randint(1, 3))]
            total = sum(v for _, v in ins) - 5_000
            outs = [(user(), total // 20) for _ in range(rng.randint(1, 10))]
            outs.append((ex_addr(x), total - sum(v for _, v in outs)))
        elif kind < 0.65:  # consolidation
            ins = [(ex_addr(x), amount()) for _ in range(rng.randint(2, 5))]
            outs = [(ex_addr(x), sum(v for _, v in ins) - 3_000)]
        elif kind < 0.70:  # exchange to exchange with change
            ins = [(ex_addr(x), amount() * 2)]
            outs = [(ex_addr(y), ins[0][1] // 2), (ex_addr(x), ins[0][1] - ins[0][1] // 2 - 2_000)]
        elif kind < 0.75:  # multi-owner inputs (payjoin/coinjoin-like)
            ins = [(ex_addr(x), amount()), (user(), amount()), (ex_addr(y), amount())]
            total = sum(v for _, v in ins) - 4_000
            outs = [(user(), total // 3), (ex_addr(y), total // 3)]
            outs.append((user(), total - sum(v for _, v in outs)))
        else:  # unrelated payment
            ins = [(user(), amount()) for _ in range(rng.randint(1, 3))]
            total = sum(v for _, v in ins) - 1_500
            outs = [(user(), total // 2), (user(), total - total // 2)]
        fee = sum(v for _, v in ins) - sum(v for _, v in outs)
        height = 840_000 + i // 3_000
        txs.append(Tx(f"{i:064x}", height, START_TIME + i * 2, True, tuple(ins), tuple(outs), fee))
    return txs


def to_esplora(tx: Tx) -> bytes:
    return orjson.dumps({
        "txid": tx.txid,
        "vin": [{"is_coinbase": False, "prevout": {"scriptpubkey_address": a, "value": v}} for a, v in tx.inputs],
        "vout": [{"scriptpubkey_address": a, "value": v} for a, v in tx.outputs],
        "fee": tx.fee,
        "status": {"confirmed": True, "block_height": tx.block_height, "block_time": tx.block_time},
    })


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    labels = load_labels()
    txs = synthetic_txs(n, labels)

    naive_s, naive = best_of(lambda: [r for tx in txs for r in classify_tx_naive(tx, labels)])
    fast_s, fast = best_of(lambda: classify_many(txs, labels))
    if fast != naive:
        raise SystemExit("classify_many and classify_tx_naive disagree")

    blobs = [to_esplora(tx) for tx in txs[: min(n, 50_000)]]
    parse_s, parsed = best_of(lambda: [parse_tx(b) for b in blobs])
    if parsed != txs[: len(blobs)]:
        raise SystemExit("parse_tx does not round-trip")

    agg_s, hourly = best_of(lambda: flows_by_hour(fast), repeat=1)

    print(json.dumps({
        "txs": n,
        "labelled_addresses": len(labels),
        "records": len(fast),
        "classify_tx_per_s": round(n / fast_s),
        "baseline_naive_tx_per_s": round(n / naive_s),
        "speedup": round(naive_s / fast_s, 2),
        "goal_tx_per_s": GOAL_TX_PER_S,
        "goal_met": n / fast_s >= GOAL_TX_PER_S,
        "parse_esplora_json_tx_per_s": round(len(blobs) / parse_s),
        "aggregate_hourly_s": round(agg_s, 3),
        "hourly_rows": len(hourly),
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
