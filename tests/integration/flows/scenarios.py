"""Transaction histories for the flow tests, and an independent (plain loops) bar computation."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from apps.flows.accounting import classify_tx
from apps.flows.esplora import parse_tx
from apps.flows.models import ExchangeWallet
from tests.flowserver import esplora_tx

BTC = 100_000_000
TIP = 850_000
# Valid addresses that no label file lists: the unlabelled world.
USERS = ["bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh", "3FZbgi29cpjq2GjdwV8eyHuJJnkLtktZc5",
         "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"]


def hour(t: int) -> datetime:
    return datetime.fromtimestamp(t - t % 3600, tz=UTC)


def basic_history(w: dict[str, list[str]], t0: int) -> dict[str, dict]:
    """Deposit, withdrawal with change, internal consolidation, exchange-to-exchange, a two-exchange deposit
    (all deeply confirmed), one unconfirmed deposit and one with a single confirmation."""
    b0, b1, c0, k0 = w["binance"][0], w["binance"][1], w["coinbase"][0], w["kraken"][0]
    u = USERS
    return {
        "deposit": esplora_tx("deposit", [(u[0], 10 * BTC)], [(b0, 8 * BTC), (u[1], 2 * BTC - 2_000)],
                              height=TIP - 10, block_time=t0),
        "withdrawal": esplora_tx("withdrawal", [(b0, 3 * BTC)], [(u[2], BTC), (b1, 2 * BTC - 3_000)],
                                 height=TIP - 9, block_time=t0 + 3600),
        "internal": esplora_tx("internal", [(b1, 2 * BTC - 3_000), (b0, BTC)], [(b0, 3 * BTC - 5_000)],
                               height=TIP - 8, block_time=t0 + 2 * 3600),
        "exchange_to_exchange": esplora_tx("e2e", [(b0, 4 * BTC)], [(c0, 25 * BTC // 10), (b0, 15 * BTC // 10 - 1_000)],
                                           height=TIP - 7, block_time=t0 + 3 * 3600),
        "two_exchanges": esplora_tx("two", [(u[3], 5 * BTC)], [(k0, BTC), (b0, 3 * BTC), (u[3], BTC - 700)],
                                    height=TIP - 6, block_time=t0 + 3 * 3600 + 600),
        "unconfirmed": esplora_tx("unconfirmed", [(u[0], 7 * BTC // 10)],
                                  [(b0, 6 * BTC // 10), (u[0], BTC // 10 - 500)]),
        "one_conf": esplora_tx("one-conf", [(u[1], BTC // 2)], [(b1, 4 * BTC // 10), (u[1], BTC // 10 - 400)],
                               height=TIP, block_time=t0 + 4 * 3600),
    }


def busy_history(w: dict[str, list[str]], t0: int, hours: int = 10, prefix: str = "busy") -> list[dict]:
    """Several hours of varied deposits and withdrawals for binance, coinbase and kraken (all final)."""
    b0, c0, k0 = w["binance"][0], w["coinbase"][0], w["kraken"][0]
    out = []
    for h in range(hours):
        base = t0 + h * 3600
        for j in range(1 + h % 3):
            amount = (h + 1) * (j + 2) * BTC // 7 + 12_345 * j
            out.append(esplora_tx(f"{prefix}-dep-{h}-{j}", [(USERS[j % 4], amount + 50_000)],
                                  [(b0 if j % 2 == 0 else c0, amount), (USERS[(j + 1) % 4], 49_000)],
                                  height=TIP - 200 + h, block_time=base + 60 * j))
        if h % 2:
            out.append(esplora_tx(f"{prefix}-wd-{h}", [(b0, (h + 3) * BTC)], [(USERS[2], h * BTC // 3),
                                                                         (b0, (h + 3) * BTC - h * BTC // 3 - 900)],
                                  height=TIP - 200 + h, block_time=base + 1800))
        if h % 3 == 0:
            out.append(esplora_tx(f"{prefix}-e2e-{h}", [(c0, 2 * BTC)],
                                  [(k0, BTC // 2 + h), (c0, 3 * BTC // 2 - h - 500)],
                                  height=TIP - 200 + h, block_time=base + 2400))
    return out


def deposits(address: str, n: int, *, top_height: int, t_top: int, prefix: str) -> list[dict]:
    """``n`` confirmed deposits to ``address``, one per block going down from ``top_height``."""
    return [esplora_tx(f"{prefix}-{i}", [(USERS[i % 4], 2 * BTC + i)], [(address, BTC + i), (USERS[(i + 1) % 4],
                                                                                              BTC - 1_000)],
                       height=top_height - i, block_time=t_top - 600 * i) for i in range(n)]


def labels_map() -> dict[str, str]:
    return dict(ExchangeWallet.objects.filter(chain="btc", active=True).values_list("address", "exchange"))


def expected_bars(txs: list[dict], labels: dict[str, str], *, whale_n: int, window: int, min_periods: int) -> dict:
    """(exchange, hour) -> expected bar numbers, computed with plain loops from the transactions."""
    per_tx = defaultdict(lambda: {"inflow": 0, "outflow": 0, "internal": 0, "fee": 0})
    hours_of = {}
    for raw in txs:
        tx = parse_tx(raw)
        for r in classify_tx(tx, labels):
            h = hour(tx.block_time)
            hours_of[tx.txid] = h
            mine = per_tx[r.exchange, tx.txid]
            mine["inflow"] += r.inflow_sat
            mine["outflow"] += r.outflow_sat
            mine["internal"] += r.internal_sat
            mine["fee"] += r.fee_sat
            every = per_tx["all", tx.txid]
            # Seen from "all", exchange-to-exchange transfers are internal, counted once (by the sender).
            if r.exchange_to_exchange:
                every["internal"] += r.outflow_sat
            else:
                every["inflow"] += r.inflow_sat
                every["outflow"] += r.outflow_sat
                every["internal"] += r.internal_sat
                every["fee"] += r.fee_sat
    bars: dict[tuple[str, datetime], dict] = {}
    tx_inflows = defaultdict(list)
    for (exchange, txid), a in per_tx.items():
        key = (exchange, hours_of[txid])
        bar = bars.setdefault(key, {"inflow": 0, "outflow": 0, "internal": 0, "fee": 0, "inflow_txs": 0,
                                    "outflow_txs": 0})
        for k in ("inflow", "outflow", "internal", "fee"):
            bar[k] += a[k]
        bar["inflow_txs"] += a["inflow"] > 0
        bar["outflow_txs"] += a["outflow"] > 0
        if a["inflow"] > 0:
            tx_inflows[key].append(a["inflow"])
    for key, bar in bars.items():
        bar["netflow"] = bar["inflow"] - bar["outflow"]
        bar["mean_inflow"] = bar["inflow"] / bar["inflow_txs"] if bar["inflow_txs"] else None
        top = sorted(tx_inflows[key], reverse=True)[:whale_n]
        bar["whale_ratio"] = sum(top) / bar["inflow"] if bar["inflow"] else None
    # z-score on a zero-filled hourly grid from the first hour of any exchange.
    first = min(h for _, h in bars)
    last = max(h for _, h in bars)
    grid = []
    t = first
    while t <= last:
        grid.append(t)
        t += timedelta(hours=1)
    for exchange in {x for x, _ in bars}:
        series = [bars[exchange, g]["netflow"] if (exchange, g) in bars else 0 for g in grid]
        for i, g in enumerate(grid):
            if (exchange, g) not in bars:
                continue
            prior = series[max(0, i - window):i]
            z = None
            if len(prior) >= min_periods:
                mean = sum(prior) / len(prior)
                sd = math.sqrt(sum((v - mean) ** 2 for v in prior) / (len(prior) - 1))
                if sd > 0:
                    z = (series[i] - mean) / sd
            bars[exchange, g]["netflow_z"] = z
    return bars
