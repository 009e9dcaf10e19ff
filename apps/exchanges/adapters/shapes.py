"""What the adapters return: plain data (ccxt dicts or these small dataclasses), never models,
and the two conversions every adapter needs (exact decimal text, stable integer ids)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from apps.derivatives.readings import FundingPoint, OpenInterestPoint  # noqa: F401 - adapters return them


@dataclass(frozen=True)
class InstrumentSpec:
    """An instrument as our registry names it: the exchange's own symbol plus base/quote."""

    symbol: str
    base: str
    quote: str


@dataclass
class TradePage:
    """Trades (ccxt unified dicts, ascending) after a cursor, and where the next page starts.

    ``more``: another request may return more (the page was full). ``gap``: the exchange could
    not reach back to the cursor (recent-trades-only endpoints), so trades may be missing.
    """

    trades: list[dict]
    more: bool = False
    gap: bool = False
    cursor_token: str | None = None


@dataclass(frozen=True)
class LiquidationPoint:
    """A forced order. ``position`` is the side that was liquidated: 'long' or 'short'."""

    key: str
    time_ms: int
    position: str
    price: str
    qty: str


@dataclass(frozen=True)
class TakerRatioPoint:
    """The exchange's own taker buy/sell volume statistic for a period (Binance futures data)."""

    time_ms: int
    buy_vol: str
    sell_vol: str
    ratio: str


@dataclass(frozen=True)
class VolIndexPoint:
    time_ms: int
    dvol: str


@dataclass(frozen=True)
class OptionIVPoint:
    time_ms: int
    atm_iv: str
    expiry_ms: int
    underlying_price: str


def num_str(value: Any) -> str | None:
    """An exact plain decimal string for a ccxt number (floats print as their shortest repr)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    text = repr(float(value))
    if "e" in text or "E" in text:
        try:
            return format(Decimal(text), "f")
        except InvalidOperation:
            return text
    return text


def synthetic_id(text: str) -> int:
    """A stable positive 63-bit integer for a non-numeric exchange id (e.g. Bybit's UUID execId)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1

