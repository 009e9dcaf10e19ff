"""Plain decimal text <-> exact integer units, a whole column at a time (pure numpy, no ORM).

A column of texts arrives as a byte matrix (one row per value, zero-padded) with each value's length.
:func:`digits_of` reads it once and says, per value, whether it is a plain ASCII decimal ("61000.5",
"0.001", "7": digits and at most one dot, nothing else) and how many decimals, integer digits and
significant digits it uses; :func:`units_of` turns the plain ones into exact integers at a scale
(61000.5 at scale 2 -> 6100050). Nothing goes through a float. Values that need more than 18 digits at
the scale come back as Python ints (an object array), so no size is ever rounded or wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

INT64_DIGITS = 18  # any 18-digit integer fits int64
_POW10 = np.array([10**k for k in range(INT64_DIGITS + 1)], dtype=np.int64)
_ZERO, _NINE, _DOT, _MINUS = 48, 57, 46, 45


def byte_matrix(buf: np.ndarray, start: np.ndarray, length: np.ndarray, width: int) -> np.ndarray:
    """Values buf[start:start + length] as rows of a (n, width) uint8 matrix, zero-padded.

    `buf` must hold no NUL byte (callers map it to 0xFF, a byte no value may contain): zero means padding.
    """
    padded = np.concatenate((buf, np.zeros(width, dtype=np.uint8)))
    mat = np.lib.stride_tricks.sliding_window_view(padded, width)[start]
    mat[np.arange(width)[None, :] >= length[:, None]] = 0
    return mat


def text_matrix(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A list of ASCII texts (as the database hands back) as a byte matrix and lengths."""
    arr = np.array([t.encode("ascii") for t in texts], dtype=bytes)
    width = max(arr.dtype.itemsize, 1)
    mat = np.frombuffer(arr.astype(f"S{width}").tobytes(), dtype=np.uint8).reshape(len(texts), width).copy()
    return mat, (mat != 0).sum(axis=1)


@dataclass(frozen=True)
class Digits:
    """What each value of a column is made of."""

    mat: np.ndarray
    length: np.ndarray
    plain: np.ndarray  # ASCII digits and at most one dot, at least one digit
    negative: np.ndarray  # "-" followed by a plain decimal
    missing: np.ndarray  # empty
    dot: np.ndarray  # position of the dot (length when there is none)
    has_dot: np.ndarray
    decimals: np.ndarray  # decimals used (trailing zeros do not count)
    int_digits: np.ndarray  # integer digits used (leading zeros do not count)
    significant: np.ndarray  # significant digits (0 for zero)
    written: np.ndarray  # digits from the first non-zero one to the end, trailing zeros included
    zero: np.ndarray  # the value is zero

    def __len__(self) -> int:
        return len(self.length)


def digits_of(mat: np.ndarray, length: np.ndarray, *, clean: bool = False) -> Digits:
    """Read a zero-padded byte matrix of values (see byte_matrix).

    `clean`: the caller knows every byte is a digit or a dot (or padding), so stray bytes are not looked for.
    """
    width = mat.shape[1]
    is_digit = (mat - np.uint8(_ZERO)) <= 9  # uint8 arithmetic wraps below "0"
    is_dot = mat == _DOT
    dots = is_dot.sum(axis=1)
    signed = np.zeros(len(length), dtype=bool)
    tidy = dots <= 1
    if not clean:
        # A leading minus is read as part of the value only to say "negative" instead of "not a number".
        signed = (mat[:, 0] == _MINUS) & (length > 1)
        stray = (mat != 0) & ~is_digit & ~is_dot
        stray[:, 0] &= ~signed
        tidy &= ~stray.any(axis=1)
    has_dot = dots > 0
    tidy &= length - dots - signed > 0  # at least one digit
    plain, negative = tidy & ~signed, tidy & signed
    dot = np.where(has_dot, np.argmax(is_dot, axis=1), length)
    nonzero = is_digit & (mat != _ZERO)
    any_nz = nonzero.any(axis=1)
    first = np.argmax(nonzero, axis=1)
    last = width - 1 - np.argmax(nonzero[:, ::-1], axis=1)
    decimals = np.where(any_nz & (last > dot), last - dot, 0)
    int_digits = np.where(any_nz & (first < dot), dot - first, 0)
    significant = np.where(any_nz, last - first + 1 - ((first < dot) & (dot < last)), 0)
    # Before the first non-zero digit there are only zeros (and maybe the dot).
    written = np.where(any_nz, length - has_dot - first + (has_dot & (dot < first)), 0)
    return Digits(mat, length, plain, negative, length == 0, dot, has_dot, decimals, int_digits, significant,
                  written, ~any_nz)


def units_of(d: Digits, scale: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Exact integer units (value x 10**scale) of the plain values; 0 where `rows` is False.

    Needs decimals <= scale on those rows. int64 when every value fits 18 digits at the scale,
    else an object array of Python ints.
    """
    rows = d.plain if rows is None else rows & d.plain
    big = rows & ((d.int_digits + scale > INT64_DIGITS) | (d.written > INT64_DIGITS))
    fast = rows & ~big
    # Horner over the columns: every digit written, the dot skipped; then shift to the scale.
    acc = np.zeros(len(d), dtype=np.int64)
    digits = d.mat - np.uint8(_ZERO)
    for j in range(d.mat.shape[1]):
        digit = digits[:, j]
        step = fast & (digit <= 9)
        acc = np.where(step, acc * 10 + digit, acc)
    written_decimals = np.where(d.has_dot, d.length - d.dot - 1, 0)
    shift = scale - written_decimals
    units = acc // _POW10[np.clip(-shift, 0, INT64_DIGITS)] * _POW10[np.clip(shift, 0, INT64_DIGITS)]
    units = np.where(fast, units, 0)
    if not big.any():
        return units
    out = units.astype(object)
    for i in np.flatnonzero(big):
        text = bytes(d.mat[i, : d.length[i]]).decode("ascii")
        whole, _, frac = text.partition(".")
        out[i] = int((whole or "0") + frac.ljust(scale, "0")[:scale])
    return out


def rescale(units: np.ndarray, old: int, new: int) -> np.ndarray:
    """Units at scale `old` as units at the finer or equal scale `new`, exactly."""
    if new == old:
        return units
    factor = 10 ** (new - old)
    if units.dtype != object and (not len(units) or int(np.abs(units).max()) < (2**63 - 1) // factor):
        return units * factor
    return units.astype(object) * factor


def as_float(units: np.ndarray, scale: int) -> np.ndarray:
    """Approximate values, for bounds and tolerance checks only."""
    return units.astype(np.float64) / 10.0**scale


def units_text(units: np.ndarray, scale: int) -> list[str]:
    """Plain decimal texts of exact units at a scale: 6100050 at 2 -> "61000.50"."""
    if units.dtype == object or scale > INT64_DIGITS:
        return [format(Decimal(int(u)).scaleb(-scale), "f") for u in units]
    if scale == 0:
        return list(map(str, units.tolist()))
    whole, frac = np.divmod(np.abs(units), _POW10[scale])
    text = f"%d.%0{scale}d"
    out = [text % pair for pair in zip(whole.tolist(), frac.tolist(), strict=True)]
    for i in np.flatnonzero(units < 0).tolist():
        out[i] = "-" + out[i]
    return out
