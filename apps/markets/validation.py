"""Validation of normalised trades before they touch the database (pure, no ORM).

Every accepted value is one the database stores exactly and the bar math can carry exactly:

- ids and times are ints within the BIGINT columns;
- prices and sizes are plain ASCII decimals (no sign, exponent, underscore or other script's
  digits), positive, with at most ``MAX_DECIMALS`` decimals (the columns' scale), at most
  ``MAX_SIGNIFICANT_DIGITS`` significant digits (what SQLite's REAL keeps) and below sanity caps;
- at an instrument's scale (:class:`Scale`: the most decimals and integer digits its values use)
  a value needs at most ``MAX_SIGNIFICANT_DIGITS`` digits, so integer units fit a float64 exactly
  and sums fit int64 or fall back to Python ints (see :func:`scale_admit`).

Every rejected row keeps its reason and its position in the batch, so ingestion can count and
report it, while the good rows of the same batch are still stored.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import NamedTuple

import numpy as np

MAX_QTY = Decimal("1e9")
MAX_PRICE = Decimal("1e12")
MAX_SIGNIFICANT_DIGITS = 15  # what every backend stores exactly, and float64 units hold exactly
MAX_DECIMALS = 10  # Trade.price and Trade.qty: decimal_places=10 (a test holds the two together)
MAX_ID = 2**63 - 1  # BIGINT
EARLIEST_MS = 1_230_768_000_000  # 2009-01-01, before any crypto exchange traded
FUTURE_SLACK_MS = 24 * 3600 * 1000
POSITIONS_KEPT = 20  # rejected row positions remembered per reason, for "line N" reports

_PLAIN_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")  # [0-9]: ASCII only, unlike \d


class TradeRow(NamedTuple):
    """A normalised trade from any exchange: price and qty as the exchange's decimal strings."""

    trade_id: int
    time_ms: int
    price: str
    qty: str
    taker_sell: bool


class Scale(NamedTuple):
    """The most decimals and integer digits an instrument's prices and sizes use."""

    price_decimals: int = 0
    price_int_digits: int = 0
    qty_decimals: int = 0
    qty_int_digits: int = 0

    def widen(self, other: Scale) -> Scale:
        return Scale(*map(max, self, other))

    def fits(self) -> bool:
        return (self.price_decimals + self.price_int_digits <= MAX_SIGNIFICANT_DIGITS
                and self.qty_decimals + self.qty_int_digits <= MAX_SIGNIFICANT_DIGITS)


@dataclass
class Validated:
    rows: list[TradeRow] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)
    examples: dict[str, object] = field(default_factory=dict)
    # Per reason, the batch positions of the first POSITIONS_KEPT rejected rows.
    positions: dict[str, list[int]] = field(default_factory=dict)
    # The batch position of each accepted row (None: rows[i] was at position i).
    origins: list[int] | None = None

    def origin(self, i: int) -> int:
        return i if self.origins is None else self.origins[i]

    def reject(self, reason: str, row: object, position: int | None = None) -> None:
        self.rejected[reason] += 1
        self.examples.setdefault(reason, row)
        if position is not None:
            kept = self.positions.setdefault(reason, [])
            if len(kept) < POSITIONS_KEPT:
                kept.append(position)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @cached_property
    def scale(self) -> Scale:
        """The scale the accepted rows need (over distinct texts: a batch repeats few values)."""
        prices = {r[2] for r in self.rows}
        qtys = {r[3] for r in self.rows}
        return Scale(
            max(map(decimals_of, prices), default=0), max(map(int_digits_of, prices), default=0),
            max(map(decimals_of, qtys), default=0), max(map(int_digits_of, qtys), default=0),
        )

    @property
    def price_decimals(self) -> int:
        return self.scale.price_decimals

    @property
    def qty_decimals(self) -> int:
        return self.scale.qty_decimals


def decimals_of(text: str) -> int:
    """Decimal places actually used: '61837.63000000' -> 2."""
    _, dot, frac = text.partition(".")
    return len(frac.rstrip("0")) if dot else 0


def int_digits_of(text: str) -> int:
    """Integer digits actually used: '061837.63' -> 5, '0.001' -> 0."""
    return len(text.partition(".")[0].lstrip("0"))


def _significant_digits(value: Decimal) -> int:
    return len(value.normalize().as_tuple().digits)


def _check_number(value: object, limit: Decimal, name: str) -> tuple[str | None, str | None]:
    """(the value as plain decimal text, None) or (None, the reason it is refused)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None, f"{name} not finite"
        value = format(Decimal(repr(value)), "f")  # shortest repr, never an exponent
    elif isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None, f"{name} not a decimal string"
    if not _PLAIN_DECIMAL.match(value):
        try:
            number = Decimal(value)
        except (InvalidOperation, ValueError):
            return None, f"{name} not a number"
        if not number.is_finite():
            return None, f"{name} not finite"
        if number <= 0:
            return None, f"{name} not positive"
        return None, f"{name} not a plain decimal (ASCII digits and one dot only)"
    number = Decimal(value)
    if number <= 0:
        return None, f"{name} not positive"
    if number > limit:
        return None, f"{name} absurdly large"
    if decimals_of(value) > MAX_DECIMALS:
        return None, f"{name} has more than {MAX_DECIMALS} decimals"
    if _significant_digits(number) > MAX_SIGNIFICANT_DIGITS:
        return None, f"{name} has more than {MAX_SIGNIFICANT_DIGITS} significant digits"
    return value, None


_DIGITS_AND_DOT = str.maketrans("", "", "0123456789.")


def _plain_positive(texts: tuple, limit: float) -> np.ndarray | None:
    """Texts that are certainly plain positive decimals within `limit`, 15 significant digits
    and MAX_DECIMALS decimals."""
    try:
        joined = "".join(texts)
    except TypeError:
        return None
    if joined.translate(_DIGITS_AND_DOT):
        return None  # a sign, exponent, space, "nan", another script's digit ...: the per-row checks name it
    try:
        values = np.array(texts, dtype=np.float64)
    except ValueError:
        return None  # "", "." or two dots
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    dots = np.fromiter((t.find(".") for t in texts), dtype=np.int64, count=len(texts))
    decimals_ok = (dots < 0) | (lengths - dots - 1 <= MAX_DECIMALS)
    # Digits only and at most one dot, so a text of n characters holds at most n significant digits.
    return (lengths <= MAX_SIGNIFICANT_DIGITS) & decimals_ok & (values > 0) & (values <= limit)


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
        return Validated(rows=rows if all(type(r) is TradeRow for r in rows) else [TradeRow(*r) for r in rows])
    return _validate_rows(rows, now_ms)


def _validate_rows(rows, now_ms: int) -> Validated:
    latest = now_ms + FUTURE_SLACK_MS
    out = Validated(origins=[])
    for position, row in enumerate(rows):
        try:
            trade_id, time_ms, price, qty, taker_sell = row
        except (TypeError, ValueError):
            out.reject("malformed row", row, position)
            continue
        if not isinstance(trade_id, int) or isinstance(trade_id, bool) or not 0 <= trade_id <= MAX_ID:
            out.reject("bad trade id", row, position)
            continue
        if not isinstance(time_ms, int) or isinstance(time_ms, bool) or not EARLIEST_MS <= time_ms <= latest:
            out.reject("time out of range", row, position)
            continue
        if not isinstance(taker_sell, bool):
            out.reject("taker side unknown", row, position)
            continue
        price, err = _check_number(price, MAX_PRICE, "price")
        if err is None:
            qty, err = _check_number(qty, MAX_QTY, "qty")
        if err:
            out.reject(err, row, position)
            continue
        out.rows.append(TradeRow(trade_id, time_ms, price, qty, taker_sell))
        out.origins.append(position)
    return out


def scale_admit(checked: Validated, scale: Scale) -> tuple[Validated, Scale]:
    """Keep the rows an instrument of `scale` can hold exactly; return them and the widened scale.

    Widening is allowed while every value stays within MAX_SIGNIFICANT_DIGITS digits at the
    instrument's scale (integer digits of its largest value + decimals of its finest one). A row
    that would break that is rejected; rows are admitted in batch order, so the first of two
    incompatible values wins, on every backend.
    """
    wanted = scale.widen(checked.scale)
    if wanted.fits():
        return checked, wanted
    out = Validated(rejected=Counter(checked.rejected), examples=dict(checked.examples),
                    positions={k: list(v) for k, v in checked.positions.items()}, origins=[])
    current = scale
    for i, row in enumerate(checked.rows):
        mine = Scale(decimals_of(row.price), int_digits_of(row.price), decimals_of(row.qty), int_digits_of(row.qty))
        widened = current.widen(mine)
        if widened.fits():
            current = widened
            out.rows.append(row)
            out.origins.append(checked.origin(i))
            continue
        what = "price" if widened.price_decimals + widened.price_int_digits > MAX_SIGNIFICANT_DIGITS else "qty"
        out.reject(f"{what} needs more than {MAX_SIGNIFICANT_DIGITS} digits beside this instrument's other "
                   f"{what}s", row, checked.origin(i))
    return out, current
