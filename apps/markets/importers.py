"""Readers for trade files: data.binance.vision `trades` / `aggTrades` CSV and the raw feed.

Pure parsing (no ORM): each reader yields normalised TradeRow tuples and counts what it
could not read, with the reason, so the import command can report it.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from apps.markets.feeds.binance import FileStats, TradeMsg, iter_file
from apps.markets.validation import TradeRow

# Header names seen in data.binance.vision files (spot and futures, old and new).
_ALIASES = {
    "id": "id", "trade_id": "id", "agg_trade_id": "id", "a": "id",
    "price": "price", "p": "price",
    "qty": "qty", "quantity": "qty", "q": "qty",
    "time": "time", "transact_time": "time", "timestamp": "time", "t": "time",
    "is_buyer_maker": "is_buyer_maker", "isbuyermaker": "is_buyer_maker", "m": "is_buyer_maker",
    "symbol": "symbol", "s": "symbol",
}
# Positions without a header: trades = id, price, qty, quote_qty, time, is_buyer_maker[, is_best_match];
# aggTrades = agg_id, price, qty, first_id, last_id, time, is_buyer_maker[, is_best_match].
_TRADES_POS = {"id": 0, "price": 1, "qty": 2, "time": 4, "is_buyer_maker": 5}
_AGG_POS = {"id": 0, "price": 1, "qty": 2, "time": 5, "is_buyer_maker": 6}


@dataclass
class ReadStats:
    layout: str = ""
    rows: int = 0
    other_symbol: int = 0
    unreadable: Counter = field(default_factory=Counter)


def _open_text(path: Path) -> io.TextIOBase:
    if zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        return io.TextIOWrapper(archive.open(archive.namelist()[0]), encoding="utf-8")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def sniff_layout(first_line: str) -> str:
    text = first_line.strip()
    if text[:1].isdigit() and " {" in text:
        return "raw"
    cells = next(csv.reader([text]))
    if any(c.strip().lower() in ("price", "p") for c in cells):
        return "csv-header"
    if len(cells) >= 7 and all(c.strip().isdigit() for c in cells[3:5]) and "." not in cells[3]:
        return "aggtrades"
    return "trades"


def _time_ms(text: str) -> int:
    value = int(text)
    # data.binance.vision moved spot files to microseconds in 2025; keep milliseconds.
    return value // 1000 if value >= 10**14 else value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def read_trades(path: str | Path, *, symbol: str, stats: ReadStats) -> Iterator[TradeRow]:
    """Yield trades of `symbol` from any supported file; m/is_buyer_maker true = taker sold."""
    path = Path(path)
    with _open_text(path) as fh:
        first = fh.readline()
    stats.layout = sniff_layout(first)
    if stats.layout == "raw":
        yield from _read_raw(path, symbol=symbol, stats=stats)
        return
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        if stats.layout == "csv-header":
            header = [c.strip().lower() for c in next(reader)]
            pos = {_ALIASES[h]: i for i, h in enumerate(header) if h in _ALIASES}
        else:
            pos = _AGG_POS if stats.layout == "aggtrades" else _TRADES_POS
        missing = {"id", "price", "qty", "time", "is_buyer_maker"} - set(pos)
        if missing:
            raise ValueError(f"{path.name}: no column for {', '.join(sorted(missing))}")
        for line_no, cells in enumerate(reader, start=2 if stats.layout == "csv-header" else 1):
            if not cells:
                continue
            stats.rows += 1
            if "symbol" in pos and cells[pos["symbol"]].strip().upper() != symbol.upper():
                stats.other_symbol += 1
                continue
            try:
                yield TradeRow(
                    int(cells[pos["id"]]), _time_ms(cells[pos["time"]]), cells[pos["price"]].strip(),
                    cells[pos["qty"]].strip(), _bool(cells[pos["is_buyer_maker"]]),
                )
            except (ValueError, IndexError) as exc:
                stats.unreadable[f"line {line_no}: {exc}"[:80]] += 1


def _read_raw(path: Path, *, symbol: str, stats: ReadStats) -> Iterator[TradeRow]:
    file_stats = FileStats()
    for _, msg in iter_file(path, stats=file_stats):
        if isinstance(msg, TradeMsg):
            stats.rows += 1
            if msg.symbol.upper() != symbol.upper():
                stats.other_symbol += 1
                continue
            yield TradeRow(msg.trade_id, msg.time_ms, msg.price, msg.qty, msg.taker_sell)
    for reason, count in file_stats.reasons.items():
        stats.unreadable[reason] += count
