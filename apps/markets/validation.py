"""Validation of normalised trades before they touch the database (pure, no ORM).

Every rejected row keeps its reason, so ingestion can log it with context and count it,
while the good rows of the same batch are still stored.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

import numpy as np

MAX_QTY = Decimal("1e9")
MAX_PRICE = Decimal("1e12")
MAX_SIGNIFICANT_DIGITS = 15  # what every backend stores exactly for a single trade
EARLIEST_MS = 1_230_768_000_000  # 2009-01-01, before any crypto exchange traded
FUTURE_SLACK_MS = 24 * 3600 * 1000


class TradeRow(NamedTuple):
    """A normalised trade from any exchange: price and qty as the exchange's decimal strings."""

    trade_id: int
    time_ms: int
    price: str
    qty: str
    taker_sell: bool


@dataclass
class Validated:
    rows: list[TradeRow] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)
    examples: dict[str, object] = field(default_factory=dict)
    price_decimals: int = 0
    qty_decimals: int = 0

    def reject(self, reason: str, row: object) -> None:
        self.rejected[reason] += 1
        self.examples.setdefault(reason, row)


def decimals_of(text: str) -> int:
    """Decimal places actually used: '61837.63000000' -> 2."""
    _, dot, frac = text.partition(".")
    return len(frac.rstrip("0")) if dot else 0


def _significant_digits(value: Decimal) -> int:
    digits = value.normalize().as_tuple().digits
    return len(digits)


def _check_number(text: object, limit: Decimal, name: str) -> tuple[Decimal | None, str | None]:
    if isinstance(text, float):
        if not math.isfinite(text):
            return None, f"{name} not finite"
        text = repr(text)
    if not isinstance(text, str):
        return None, f"{name} not a decimal string"
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None, f"{name} not a number"
    if not value.is_finite():
        return None, f"{name} not finite"
    if value <= 0:
        return None, f"{name} not positive"
    if value > limit:
        return None, f"{name} absurdly large"
    if _significant_digits(value) > MAX_SIGNIFICANT_DIGITS:
        return None, f"{name} has more than {MAX_SIGNIFICANT_DIGITS} significant digits"
    return value, None


_DIGITS_AND_DOT = str.maketrans("", "", "0123456789.")


def _plain_positive(texts: tuple, limit: float) -> np.ndarray | None:
    """Texts that are certainly plain positive decimals within `limit` and 15 significant digits."""
    try:
        joined = "".join(texts)
    except TypeError:
        return None
    if joined.translate(_DIGITS_AND_DOT):
        return None  # a sign, exponent, space, "nan" ...: the per-row checks name it
    try:
        values = np.array(texts, dtype=np.float64)
    except ValueError:
        return None  # "", "." or two dots
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    # Digits only and at most one dot, so a text of n characters holds at most n significant digits.
    return (lengths <= MAX_SIGNIFICANT_DIGITS) & (values > 0) & (values <= limit)


def _clean_mask(rows: list, now_ms: int) -> np.ndarray | None:
    """Rows that certainly pass every check, found with vectorised tests (None: use the slow path).

    Ingest speed is dominated by validation, so the common clean batch is vetted in bulk; any
    row not proven clean here goes through the per-row checks, which give the exact reason.
    """
    try:
        ids, times, prices, qtys, sells = zip(*rows, strict=True)
    except (TypeError, ValueError):
        return None
    # bool is a subclass of int: type() keeps True out of ids and times.
    if set(map(type, ids)) != {int} or set(map(type, times)) != {int} or set(map(type, sells)) != {bool}:
        return None
    try:
        id_arr = np.array(ids, dtype=np.int64)
        t_arr = np.array(times, dtype=np.int64)
    except OverflowError:
        return None
    mask = (id_arr >= 0) & (t_arr >= EARLIEST_MS) & (t_arr <= now_ms + FUTURE_SLACK_MS)
    for texts, limit in ((prices, float(MAX_PRICE)), (qtys, float(MAX_QTY))):
        plain = _plain_positive(texts, limit)
        if plain is None:
            return None
        mask &= plain
    return mask


def trades_validate(rows, *, now_ms: int | None = None) -> Validated:
    """Split rows into good ones and rejected ones (with reasons); duplicates are the DB's job."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    rows = rows if isinstance(rows, list) else list(rows)
    mask = _clean_mask(rows, now_ms) if len(rows) > 64 else None
    if mask is not None and mask.all():
        out = Validated(rows=rows if all(type(r) is TradeRow for r in rows) else [TradeRow(*r) for r in rows])
        out.price_decimals = _max_decimals({r[2] for r in rows})
        out.qty_decimals = _max_decimals({r[3] for r in rows})
        return out
    return _validate_rows(rows, now_ms)


def _max_decimals(texts: set[str]) -> int:
    # Over distinct texts: a batch repeats few prices and sizes many times.
    return max(map(decimals_of, texts), default=0)


def _validate_rows(rows, now_ms: int) -> Validated:
    latest = now_ms + FUTURE_SLACK_MS
    out = Validated()
    price_dec = qty_dec = 0
    for row in rows:
        try:
            trade_id, time_ms, price, qty, taker_sell = row
        except (TypeError, ValueError):
            out.reject("malformed row", row)
            continue
        if not isinstance(trade_id, int) or isinstance(trade_id, bool) or trade_id < 0:
            out.reject("bad trade id", row)
            continue
        if not isinstance(time_ms, int) or not EARLIEST_MS <= time_ms <= latest:
            out.reject("time out of range", row)
            continue
        if not isinstance(taker_sell, bool):
            out.reject("taker side unknown", row)
            continue
        _, err = _check_number(price, MAX_PRICE, "price")
        if err is None:
            _, err = _check_number(qty, MAX_QTY, "qty")
        if err:
            out.reject(err, row)
            continue
        price, qty = str(price), str(qty)
        price_dec = max(price_dec, decimals_of(price))
        qty_dec = max(qty_dec, decimals_of(qty))
        out.rows.append(TradeRow(trade_id, time_ms, price, qty, taker_sell))
    out.price_decimals, out.qty_decimals = price_dec, qty_dec
    return out
