"""Readers for trade files: data.binance.vision `trades` / `aggTrades` CSV and the raw feed.

Pure parsing (no ORM): :func:`read_trades` yields ``(line number, TradeRow)`` and counts what it
could not read, with the reason and line numbers, so the import command can report it. Numbers
are passed on as the file's text (validation checks them); ids and times must be ASCII digits.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from apps.markets.archives import FileProblem, LineStats, file_lines
from apps.markets.feeds.binance import MalformedMessage, TradeMsg, parse_line
from apps.markets.validation import POSITIONS_KEPT, TradeRow

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
# A file whose first rows are all unreadable is not a trades file (klines, say): stop, say so.
LAYOUT_PROBE_ROWS = 100


@dataclass
class ReadStats:
    layout: str = ""
    rows: int = 0  # data rows seen
    read: int = 0  # rows read into trades
    other_symbol: int = 0
    unreadable: Counter = field(default_factory=Counter)  # reason -> rows
    unreadable_lines: dict[str, list[int]] = field(default_factory=dict)  # reason -> first line numbers
    lines: LineStats = field(default_factory=LineStats)

    def refuse(self, reason: str, line_no: int) -> None:
        self.unreadable[reason] += 1
        kept = self.unreadable_lines.setdefault(reason, [])
        if len(kept) < POSITIONS_KEPT:
            kept.append(line_no)

    @property
    def damage(self) -> str:
        return self.lines.damage


def sniff_layout(first_line: str) -> str:
    text = first_line.strip()
    if text[:1].isdigit() and " {" in text:
        return "raw"
    cells = next(csv.reader([text]))
    if any(c.strip().lower() in ("price", "p") for c in cells):
        return "csv-header"
    # aggTrades: agg_id, price, qty, first_id, last_id, TIME, IS_BUYER_MAKER[, best_match];
    # trades: id, price, qty, quote_qty, TIME, IS_BUYER_MAKER[, best_match].
    if len(cells) >= 7 and _is_time(cells[5]) and _is_bool(cells[6]) and not _is_bool(cells[5]):
        return "aggtrades"
    return "trades"


def _is_time(text: str) -> bool:
    text = text.strip()
    return text.isascii() and text.isdigit() and len(text) >= 12


def _is_bool(text: str) -> bool:
    return text.strip().lower() in ("true", "false", "1", "0")


def ascii_int(text: str, what: str) -> int:
    """An int from ASCII digits only: int() would also take '1_0', ' 12' and other scripts' digits."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{what} not an integer of ASCII digits")
    return int(text)


def time_ms_of(text: str) -> int:
    value = ascii_int(text, "time")
    # data.binance.vision moved spot files to microseconds in 2025; keep milliseconds.
    return value // 1000 if value >= 10**14 else value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError("is_buyer_maker not true/false")


def _texts(lines: Iterator[str | None], stats: ReadStats, first_no: int) -> Iterator[str]:
    """Lines for the csv reader; a line that is not UTF-8 is refused and read as empty."""
    for offset, line in enumerate(lines):
        if line is None:
            stats.refuse("not UTF-8 text", first_no + offset)
            yield ""
        else:
            yield line


def read_trades(path: str | Path, *, symbol: str, stats: ReadStats) -> Iterator[tuple[int, TradeRow]]:
    """Yield (line number, trade) for `symbol` from any supported file; m/is_buyer_maker true = taker sold.

    Raises FileProblem when the file cannot be read at all or is not a trades file; stops early,
    with ``stats.damage`` set, when it is damaged part-way.
    """
    path = Path(path)
    lines = file_lines(path, stats.lines)
    first_no, first = 0, ""
    for first_no, line in enumerate(lines, start=1):
        if line is None:
            stats.refuse("not UTF-8 text", first_no)
        elif line.strip():
            first = line
            break
    if not first:
        if stats.damage:
            return
        raise FileProblem(f"{path.name}: no data (the file is empty)")
    stats.layout = sniff_layout(first)
    rows = _raw_rows if stats.layout == "raw" else _csv_rows
    yield from rows(first, lines, first_no, symbol=symbol, stats=stats, name=path.name)
    if not stats.read and stats.unreadable and not stats.other_symbol:
        _layout_refuse(stats, path.name)


def _layout_check(stats: ReadStats, name: str) -> None:
    """Refuse a file whose first LAYOUT_PROBE_ROWS rows are all unreadable: it is no trades file."""
    if not stats.read and stats.rows >= LAYOUT_PROBE_ROWS and not stats.other_symbol:
        _layout_refuse(stats, name)


def _layout_refuse(stats: ReadStats, name: str) -> None:
    reason, lines = next(iter(stats.unreadable_lines.items()))
    raise FileProblem(f"{name}: not a trades file in a known layout ({stats.layout}): no row could be read"
                      f" (line {lines[0]}: {reason})")


def _csv_rows(first: str, lines, first_no: int, *, symbol: str, stats: ReadStats,
              name: str) -> Iterator[tuple[int, TradeRow]]:
    header = stats.layout == "csv-header"
    if header:
        names = [c.strip().lower() for c in next(csv.reader([first]))]
        pos = {_ALIASES[h]: i for i, h in enumerate(names) if h in _ALIASES}
        missing = {"id", "price", "qty", "time", "is_buyer_maker"} - set(pos)
        if missing:
            raise FileProblem(f"line {first_no}: the header has no column for {', '.join(sorted(missing))}")
        texts, start = _texts(lines, stats, first_no + 1), first_no
    else:
        pos = _AGG_POS if stats.layout == "aggtrades" else _TRADES_POS
        texts, start = _texts(_chained(first, lines), stats, first_no), first_no - 1
    reader = csv.reader(texts)
    wanted = symbol.upper()
    for cells in reader:
        if not cells:
            continue
        line_no = start + reader.line_num
        stats.rows += 1
        try:
            if "symbol" in pos and cells[pos["symbol"]].strip().upper() != wanted:
                stats.other_symbol += 1
                continue
            row = TradeRow(
                ascii_int(cells[pos["id"]], "trade id"), time_ms_of(cells[pos["time"]]), cells[pos["price"]].strip(),
                cells[pos["qty"]].strip(), _bool(cells[pos["is_buyer_maker"]]),
            )
        except IndexError:
            stats.refuse("too few columns", line_no)
            _layout_check(stats, name)
            continue
        except ValueError as exc:
            stats.refuse(str(exc), line_no)
            _layout_check(stats, name)
            continue
        stats.read += 1
        yield line_no, row


def _chained(first: str, lines):
    yield first
    yield from lines


def _raw_rows(first: str, lines, first_no: int, *, symbol: str, stats: ReadStats,
              name: str) -> Iterator[tuple[int, TradeRow]]:
    wanted = symbol.upper()
    for line_no, line in enumerate(_chained(first, lines), start=first_no):
        if line is None:
            stats.refuse("not UTF-8 text", line_no)
            continue
        if not line.strip():
            continue
        try:
            _, msg = parse_line(line)
        except MalformedMessage as exc:
            stats.rows += 1
            stats.refuse(exc.kind, line_no)
            _layout_check(stats, name)
            continue
        if isinstance(msg, TradeMsg):
            stats.rows += 1
            if msg.symbol.upper() != wanted:
                stats.other_symbol += 1
                continue
            stats.read += 1
            yield line_no, TradeRow(msg.trade_id, msg.time_ms, msg.price, msg.qty, msg.taker_sell)
