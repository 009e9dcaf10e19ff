"""Reader for data.binance.vision klines (pure: no ORM).

Columns, with or without a header line: open_time, open, high, low, close, volume (base), close_time,
quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume, ignore. Times are milliseconds,
or microseconds (spot archives from 2025-01-01). Lines come from :func:`apps.markets.archives.file_lines`
(plain, gzip or zip, damaged files keep their rows before the damage) and are parsed a block at a time
with numpy: every value is read from its text into exact integer units, never through a float.

A row is accepted only if the database stores every value exactly and the kline makes sense (prices
positive with low <= open, close <= high; volumes >= 0; taker buy volume within the volume; the open
time on the interval's grid and the close time that of a kline of that interval). Every other row is
counted with its reason and line number in :class:`apps.markets.importers.ReadStats` and never takes a
good row with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from itertools import islice
from pathlib import Path

import numpy as np

from apps.markets.archives import FileProblem, file_lines
from apps.markets.decimal_text import Digits, as_float, byte_matrix, digits_of, rescale, units_of
from apps.markets.importers import ReadStats
from apps.markets.validation import EARLIEST_MS, MAX_DECIMALS, MAX_PRICE, MAX_SIGNIFICANT_DIGITS

KLINE_INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
COLUMNS = 12
MAX_VOLUME = 10**18  # a kline's base or quote volume; 60 of them summed still fit the bar columns
MAX_TRADES = (2**31 - 1) // 60  # the trade count of 60 klines rolled into one bar still fits its column
MAX_WIDTH = 40  # characters in one value
MICROSECONDS = 10**14  # a time at or above this is in microseconds (as importers.time_ms_of)
CHUNK_LINES = 100_000
# (column, name in reasons); column 11 ("ignore") is not read.
_UNCLEAN = np.ones(256, dtype=bool)
_UNCLEAN[list(b"0123456789.,\n")] = False
_PRICES = ((1, "open"), (2, "high"), (3, "low"), (4, "close"))
_BASE = ((5, "volume"), (9, "taker buy volume"))
_QUOTE = ((7, "quote volume"), (10, "taker buy quote volume"))


@dataclass(frozen=True)
class Klines:
    """Accepted klines as parallel arrays; prices and volumes in integer units at their scales."""

    line: np.ndarray
    open_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    taker_buy_base: np.ndarray
    quote_volume: np.ndarray
    taker_buy_quote: np.ndarray
    trades: np.ndarray
    price_scale: int = 0
    base_scale: int = 0
    quote_scale: int = 0

    def __len__(self) -> int:
        return len(self.open_ms)

    def take(self, index) -> Klines:
        return Klines(*(getattr(self, f.name)[index] for f in fields(self)[:11]),
                      self.price_scale, self.base_scale, self.quote_scale)

    @classmethod
    def empty(cls) -> Klines:
        return cls(*(np.zeros(0, dtype=np.int64) for _ in range(11)))

    @classmethod
    def concat(cls, parts: list[Klines]) -> Klines:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        scales = {name: max(getattr(p, name) for p in parts) for name in ("price_scale", "base_scale", "quote_scale")}
        groups = {"price_scale": ("open", "high", "low", "close"), "base_scale": ("volume", "taker_buy_base"),
                  "quote_scale": ("quote_volume", "taker_buy_quote")}
        arrays = {}
        for f in fields(cls)[:11]:
            scale = next((s for s, names in groups.items() if f.name in names), None)
            pieces = [getattr(p, f.name) if scale is None else rescale(getattr(p, f.name), getattr(p, scale),
                                                                        scales[scale]) for p in parts]
            kind = object if any(piece.dtype == object for piece in pieces) else np.int64
            arrays[f.name] = np.concatenate([piece.astype(kind) for piece in pieces])
        return cls(**arrays, **scales)


def read_klines(path: str | Path, *, interval: str, stats: ReadStats, now_ms: int | None = None) -> Klines:
    """The klines of a file that can be stored, sorted by open time (duplicates kept, in file order).

    Raises FileProblem when the file cannot be read at all or no row in it is a kline of `interval`;
    stops early, with ``stats.damage`` set, when it is damaged part-way.
    """
    path = Path(path)
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    lines = file_lines(path, stats.lines)
    parts: list[Klines] = []
    line_no = 0
    while chunk := list(islice(lines, CHUNK_LINES)):
        first_no, line_no = line_no + 1, line_no + len(chunk)
        if None in chunk:
            for i in [i for i, line in enumerate(chunk) if line is None]:
                stats.rows += 1
                stats.refuse("not UTF-8 text", first_no + i)
                chunk[i] = ""
        if not stats.layout:
            _header_skip(chunk, stats)
        parts.append(_parse(chunk, first_no, interval=interval, now_ms=now_ms, stats=stats))
    if not stats.rows and not stats.damage:
        raise FileProblem(f"{path.name}: no data (the file is empty)")
    if not stats.read and stats.unreadable:
        reason, numbers = max(stats.unreadable_lines.items(), key=lambda item: stats.unreadable[item[0]])
        raise FileProblem(f"{path.name}: no row could be read as {interval} klines"
                          f" (line {numbers[0]:,}: {reason})")
    klines = Klines.concat(parts)
    return klines.take(np.argsort(klines.open_ms, kind="stable"))


def _header_skip(chunk: list[str], stats: ReadStats) -> None:
    for i, line in enumerate(chunk):
        if line.strip():
            stats.layout = "klines"
            if line.lstrip()[:1].isalpha():  # open_time,open,high,... (USD-M archives have one)
                stats.layout = "klines with header"
                chunk[i] = ""
            return


class _Reasons:
    """The first reason each row fails, in the order the checks run."""

    def __init__(self, n: int):
        self.code = np.full(n, -1, dtype=np.int64)
        self.texts: list[str] = []

    def add(self, mask: np.ndarray, text: str) -> None:
        mask = mask & (self.code < 0)
        if mask.any():
            self.code[mask] = len(self.texts)
            self.texts.append(text)

    @property
    def good(self) -> np.ndarray:
        return self.code < 0


def _parse(chunk: list[str], first_no: int, *, interval: str, now_ms: int, stats: ReadStats) -> Klines:
    data = ("\n".join(chunk) + "\n").encode("utf-8")
    if b" " in data or b"\t" in data:
        # Spaces around a value are dropped, as the trades reader does (spreadsheet exports).
        data = ("\n".join(",".join(c.strip() for c in line.split(",")) for line in chunk) + "\n").encode("utf-8")
    buf = np.frombuffer(data, dtype=np.uint8)
    if b"\x00" in data:  # a NUL byte is never part of a value; byte_matrix pads with it
        buf = np.where(buf == 0, np.uint8(255), buf)
    ends = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    commas = np.flatnonzero(buf == 44)
    line_of_comma = np.searchsorted(ends, commas)
    per_line = np.bincount(line_of_comma, minlength=len(ends))
    numbers = first_no + np.arange(len(ends))
    blank = ends == starts
    stats.rows += int((~blank).sum())
    shaped = ~blank & (per_line == COLUMNS - 1)
    for i in np.flatnonzero(~blank & ~shaped):
        stats.refuse(f"expected {COLUMNS} columns, found {per_line[i] + 1}", int(numbers[i]))
    rows = np.flatnonzero(shaped)
    cuts = commas[shaped[line_of_comma]].reshape(-1, COLUMNS - 1)
    field_start = np.column_stack([starts[rows], cuts[:, :-1] + 1])
    reasons = _Reasons(len(rows))
    clean = not np.any(_UNCLEAN[buf])  # only digits, dots, commas and line ends: no stray byte to look for
    cols = []
    for col in range(COLUMNS - 1):
        length = cuts[:, col] - field_start[:, col]
        width = max(1, int(min(length.max(initial=0), MAX_WIDTH)))
        shown = np.minimum(length, width)
        cols.append((digits_of(byte_matrix(buf, field_start[:, col], shown, width), shown, clean=clean),
                     length > MAX_WIDTH))
    klines = _checked(cols, reasons, interval=interval, now_ms=now_ms)
    good = reasons.good
    for i in np.flatnonzero(~good):
        stats.refuse(reasons.texts[reasons.code[i]], int(numbers[rows[i]]))
    stats.read += int(good.sum())
    return replace(klines.take(good), line=numbers[rows][good])


def _format_check(reasons: _Reasons, d: Digits, too_long: np.ndarray, name: str, *, integer: bool = False) -> None:
    reasons.add(d.missing, f"{name} missing")
    reasons.add(too_long, f"{name} too long")
    if integer:
        reasons.add(~d.plain | d.has_dot, f"{name} not an integer of ASCII digits")
        return
    reasons.add(d.negative, f"{name} negative")
    reasons.add(~d.plain, f"{name} not a plain decimal (ASCII digits and one dot only)")
    reasons.add(d.decimals > MAX_DECIMALS, f"{name} has more than {MAX_DECIMALS} decimals")


def _scale(reasons: _Reasons, columns: list[Digits]) -> int:
    """The scale a group of columns shares: the most decimals any readable value of it uses."""
    return max((int(d.decimals[reasons.good & d.plain].max(initial=0)) for d in columns), default=0)


def _checked(cols: list[tuple[Digits, np.ndarray]], reasons: _Reasons, *, interval: str, now_ms: int) -> Klines:
    """Every check: times, then prices, then volumes and counts, then how they fit together. Returns the
    units of all rows (meaningful where reasons.good)."""
    open_ms = _times_check(cols, reasons, interval=interval, now_ms=now_ms)
    for col, name in _PRICES:
        d, long_ = cols[col]
        _format_check(reasons, d, long_, name)
        reasons.add(d.significant > MAX_SIGNIFICANT_DIGITS,
                    f"{name} has more than {MAX_SIGNIFICANT_DIGITS} significant digits")
        reasons.add(d.zero, f"{name} not positive")
    price_scale = _scale(reasons, [cols[c][0] for c, _ in _PRICES])
    prices = {name: units_of(cols[c][0], price_scale, reasons.good) for c, name in _PRICES}
    for name, units in prices.items():
        reasons.add(as_float(units, price_scale) > float(MAX_PRICE), f"{name} absurdly large")

    trades, long_ = cols[8]
    for col, name in (*_BASE, *_QUOTE):
        _format_check(reasons, cols[col][0], cols[col][1], name)
        reasons.add(cols[col][0].int_digits > 18, f"{name} absurdly large")
    _format_check(reasons, trades, long_, "trade count", integer=True)
    reasons.add(trades.int_digits > 9, "trade count absurdly large")
    amounts = {"trades": units_of(trades, 0, reasons.good)}
    reasons.add(amounts["trades"] > MAX_TRADES, "trade count absurdly large")
    scales = {group: _scale(reasons, [cols[c][0] for c, _ in group]) for group in (_BASE, _QUOTE)}
    for group, scale in scales.items():
        for col, name in group:
            amounts[name] = units_of(cols[col][0], scale, reasons.good)
            reasons.add(as_float(amounts[name], scale) > MAX_VOLUME, f"{name} absurdly large")

    klines = Klines(
        np.zeros(len(open_ms), dtype=np.int64), open_ms, prices["open"], prices["high"], prices["low"], prices["close"],
        amounts["volume"], amounts["taker buy volume"], amounts["quote volume"], amounts["taker buy quote volume"],
        amounts["trades"], price_scale, scales[_BASE], scales[_QUOTE],
    )
    _consistency_check(reasons, klines)
    return klines


def _times_check(cols: list[tuple[Digits, np.ndarray]], reasons: _Reasons, *, interval: str, now_ms: int) -> np.ndarray:
    """Open times in ms (from ms or us), on the interval's grid, closed before now, with the close time of a
    kline of the interval."""
    interval_ms = KLINE_INTERVAL_MS[interval]
    (opened, open_long), (closed, close_long) = cols[0], cols[6]
    _format_check(reasons, opened, open_long, "open time", integer=True)
    reasons.add(opened.int_digits > 17, "open time out of range")
    _format_check(reasons, closed, close_long, "close time", integer=True)
    reasons.add(closed.int_digits > 17, "close time out of range")
    raw_open, raw_close = units_of(opened, 0, reasons.good), units_of(closed, 0, reasons.good)
    micro = raw_open >= MICROSECONDS
    open_ms = np.where(micro, raw_open // 1000, raw_open)
    reasons.add((micro & (raw_open % 1000 != 0)) | (open_ms % interval_ms != 0),
                f"open time not on the {interval} grid")
    reasons.add(open_ms < EARLIEST_MS, "open time out of range")
    reasons.add(open_ms + interval_ms > now_ms, "kline not closed yet (it ends after now)")
    step = np.where(micro, interval_ms * 1000, interval_ms)
    reasons.add(raw_close != raw_open + step - 1,
                f"close time does not match a {interval} kline (open time + {interval} - 1 ms)")
    return open_ms


def _consistency_check(reasons: _Reasons, k: Klines) -> None:
    reasons.add(k.high < k.low, "high below low")
    reasons.add((k.open < k.low) | (k.open > k.high), "open outside [low, high]")
    reasons.add((k.close < k.low) | (k.close > k.high), "close outside [low, high]")
    reasons.add(k.taker_buy_base > k.volume, "taker buy volume above volume")
    reasons.add(k.taker_buy_quote > k.quote_volume, "taker buy quote volume above quote volume")
    # (A quote volume of zero beside some volume is possible: tiny trades at tiny prices round to 0.)
    reasons.add((k.volume == 0) & (k.quote_volume != 0), "quote volume without volume")
    reasons.add((k.volume == 0) != (k.trades == 0), "volume and trade count disagree (one is zero)")
    # The quote volume is the sum of price x size over the kline's trades, each rounded to the quote's
    # last decimal: its VWAP lies within [low, high] up to that rounding.
    volume = as_float(k.volume, k.base_scale)
    quote = as_float(k.quote_volume, k.quote_scale)
    slack = quote * 1e-9 + (k.trades.astype(np.float64) + 1) * 10.0**-k.quote_scale
    low, high = as_float(k.low, k.price_scale), as_float(k.high, k.price_scale)
    reasons.add((quote < low * volume - slack) | (quote > high * volume + slack),
                "quote volume / volume outside [low, high]")
