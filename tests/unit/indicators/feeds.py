"""Real recordings as plain Python tuples and as the indicator package's input arrays (tests only)."""

from __future__ import annotations

import gzip
import json
from functools import cache
from typing import NamedTuple

import numpy as np

from tests.recordings import RAW, raw_trades


class Trades(NamedTuple):
    """Trades sorted by exchange time: time_ms (int64), price, qty (base), taker_sell (bool)."""

    time_ms: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    taker_sell: np.ndarray


class Quotes(NamedTuple):
    """Best bid/ask updates sorted by time: time_ms, bid_px, bid_qty, ask_px, ask_qty."""

    time_ms: np.ndarray
    bid_px: np.ndarray
    bid_qty: np.ndarray
    ask_px: np.ndarray
    ask_qty: np.ndarray


@cache
def book_tickers(name: str) -> tuple[tuple, ...]:
    """(time_ms, bid_px, bid_qty, ask_px, ask_qty) per bookTicker line, floats from the JSON strings.

    Futures tickers carry the exchange time T. Spot tickers carry none: they get the time of the
    next trade in the file (receive order), which keeps them on the trades' exchange clock; the
    few after the last trade get the last trade's time.
    """
    rows, pending = [], []
    last_trade = None
    with gzip.open(RAW / name, "rt") as fh:
        for line in fh:
            _, _, body = line.partition(" ")
            msg = json.loads(body)
            stream = msg.get("stream", "")
            if stream.endswith("@trade"):
                last_trade = msg["data"]["T"]
                rows.extend((last_trade, *p) for p in pending)
                pending = []
            elif stream.endswith("@bookTicker"):
                d = msg["data"]
                quote = (float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]))
                if "T" in d:
                    rows.append((d["T"], *quote))
                else:
                    pending.append(quote)
    rows.extend((last_trade, *p) for p in pending)
    # Spot trade times are not strictly in receive order at the ms level: keep times monotone.
    out, high = [], None
    for r in rows:
        high = r[0] if high is None else max(high, r[0])
        out.append((high, *r[1:]))
    return tuple(out)


def trades_of(name: str) -> Trades:
    rows = sorted(raw_trades(name), key=lambda r: (r[1], r[0]))
    return Trades(
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([float(r[2]) for r in rows]),
        np.array([float(r[3]) for r in rows]),
        np.array([r[4] for r in rows], dtype=bool),
    )


def quotes_of(name: str) -> Quotes:
    rows = book_tickers(name)
    cols = list(zip(*rows, strict=True))
    return Quotes(np.array(cols[0], dtype=np.int64), *(np.array(c, dtype=float) for c in cols[1:]))
