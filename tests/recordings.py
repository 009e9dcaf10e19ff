"""Helpers that read the real recordings in ../shared/data for tests (plain Python, no app code)."""

from __future__ import annotations

import gzip
import json
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
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


KLINES = DATA / "binance-klines-btcusdt-5m"
_VWAP = Context(prec=60)


def kline_rows(path: Path) -> list[list[str]]:
    """The cells of a data.binance.vision klines CSV (no header), as text."""
    return [line.split(",") for line in path.read_text().splitlines() if line]


def kline_bars_by_hand(rows: list[list[str]], interval_ms: int) -> dict[int, dict]:
    """Independent kline bars with Decimal and loops (the reference for the importer's numpy code):
    one bar per bucket of `interval_ms` over kline rows (cells as text), buckets from open times in ms."""
    bars: dict[int, dict] = {}
    for cells in sorted(rows, key=lambda c: int(c[0])):
        t = int(cells[0])
        t = t // 1000 if t >= 10**14 else t
        o, h, lo, c = (Decimal(x) for x in cells[1:5])
        volume, quote, buy, buy_q = Decimal(cells[5]), Decimal(cells[7]), Decimal(cells[9]), Decimal(cells[10])
        bucket = t - t % interval_ms
        bar = bars.setdefault(bucket, {"open": o, "high": h, "low": lo, "trades": 0, "buy": Decimal(0),
                                       "sell": Decimal(0), "buy_q": Decimal(0), "sell_q": Decimal(0), "klines": 0})
        bar["high"], bar["low"], bar["close"] = max(bar["high"], h), min(bar["low"], lo), c
        bar["trades"] += int(cells[8])
        bar["buy"] += buy
        bar["sell"] += volume - buy
        bar["buy_q"] += buy_q
        bar["sell_q"] += quote - buy_q
        bar["klines"] += 1
    for bar in bars.values():
        volume = bar["buy"] + bar["sell"]
        bar["delta"] = bar["buy"] - bar["sell"]
        bar["ratio"] = float(Fraction(bar["sell"]) / Fraction(volume)) if volume else None
        if volume and bar["buy_q"] + bar["sell_q"]:  # a quote volume rounded to zero gives no VWAP
            exact = _VWAP.divide(bar["buy_q"] + bar["sell_q"], volume)
            bar["vwap"] = exact.quantize(Decimal(1).scaleb(exact.adjusted() - 11), rounding=ROUND_HALF_EVEN,
                                         context=_VWAP)
        else:
            bar["vwap"] = None
    return bars
