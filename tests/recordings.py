"""Helpers that read the real recordings in ../shared/data for tests (plain Python, no app code)."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RAW = DATA / "binance-raw-feed"


@cache
def raw_trades(name: str, directory: Path = RAW) -> tuple[tuple, ...]:
    """(trade_id, T, price_str, qty_str, taker_sell) straight from the raw JSON lines."""
    out = []
    with gzip.open(directory / name, "rt") as fh:
        for line in fh:
            _, _, body = line.partition(" ")
            msg = json.loads(body)
            if msg.get("stream", "").endswith("@trade"):
                d = msg["data"]
                out.append((d["t"], d["T"], d["p"], d["q"], d["m"]))
    return tuple(out)


def minute_bars_by_hand(trades, interval_ms: int = 60_000) -> dict[int, dict]:
    """Independent bar computation with Decimal and loops: the reference for the app's numpy code."""
    bars: dict[int, dict] = {}
    for _trade_id, t, price, qty, sell in sorted(trades, key=lambda r: (r[1], r[0])):
        p, q = Decimal(price), Decimal(qty)
        bucket = t - t % interval_ms
        bar = bars.setdefault(bucket, {"open": p, "high": p, "low": p, "close": p, "trades": 0,
                                       "buy": Decimal(0), "sell": Decimal(0), "buy_q": Decimal(0),
                                       "sell_q": Decimal(0)})
        bar["high"] = max(bar["high"], p)
        bar["low"] = min(bar["low"], p)
        bar["close"] = p
        bar["trades"] += 1
        if sell:
            bar["sell"] += q
            bar["sell_q"] += p * q
        else:
            bar["buy"] += q
            bar["buy_q"] += p * q
    return bars
