"""ccxt structures -> the app's ingestion rows (pure: no ORM, no network).

Trades become :class:`TradeRow` with the taker side; order books become
:class:`~apps.markets.orderbook.BookSummary` through the same :class:`OrderBook` depth code the
Binance feed uses. Anything that cannot be trusted is rejected with a reason, counted, and
kept out of the batch while the good rows of the same batch go through.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from apps.exchanges.adapters import num_str, synthetic_id
from apps.markets.feeds.binance import DepthSnapshotMsg
from apps.markets.orderbook import DEFAULT_BANDS, BookSummary, OrderBook
from apps.markets.validation import TradeRow, trades_validate

__all__ = ["Normalized", "book_summary", "taker_sell_of", "trade_row", "trades_normalize"]


@dataclass
class Normalized:
    rows: list[TradeRow] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)
    examples: dict[str, object] = field(default_factory=dict)
    max_id: int | None = None
    max_time_ms: int | None = None

    def reject(self, reason: str, item: object, count: int = 1) -> None:
        self.rejected[reason] += count
        self.examples.setdefault(reason, item)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


class Rejected(ValueError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def taker_sell_of(trade: dict) -> bool:
    """True when the taker sold. A public trade's ccxt ``side`` is the taker's side; for a
    trade seen from the maker (``takerOrMaker == 'maker'``) the taker is the other side."""
    side = trade.get("side")
    if side not in ("buy", "sell"):
        raise Rejected("taker side unknown")
    if trade.get("takerOrMaker") == "maker":
        return side == "buy"
    return side == "sell"


def _trade_id(raw) -> int:
    if raw is None:
        raise Rejected("missing trade id")
    text = str(raw)
    if text.isascii() and text.isdigit():
        return int(text)
    if not text or len(text) > 128:
        raise Rejected("bad trade id")
    return synthetic_id(text)


def _scaled(text: str | None, scale: Decimal | None) -> str | None:
    if text is None or scale is None:
        return text
    try:
        return format((Decimal(text) * scale).normalize(), "f")
    except InvalidOperation:
        return text  # validation names the problem


def trade_row(trade: dict, *, contract_size: Decimal | None = None) -> TradeRow:
    """One ccxt unified trade -> TradeRow (qty in base units). Raises :class:`Rejected`."""
    if not isinstance(trade, dict):
        raise Rejected("malformed trade")
    if trade.get("error"):
        raise Rejected(trade["error"])
    ts = trade.get("timestamp")
    if type(ts) is not int:
        if isinstance(ts, float) and ts.is_integer():
            ts = int(ts)
        else:
            raise Rejected("missing or bad timestamp")
    price = num_str(trade.get("price"))
    qty = _scaled(num_str(trade.get("amount")), contract_size)
    if price is None:
        raise Rejected("missing price")
    if qty is None:
        raise Rejected("missing qty")
    return TradeRow(_trade_id(trade.get("id")), ts, price, qty, taker_sell_of(trade))


def trades_normalize(trades, *, contract_size: Decimal | None = None, symbol: str | None = None,
                     now_ms: int | None = None) -> Normalized:
    """Convert and validate a batch. Rows of another symbol, duplicates within the batch and
    rows the shared validator refuses (NaN, negative, absurd, bad time) are rejected by reason."""
    out = Normalized()
    converted: list[TradeRow] = []
    seen: set[int] = set()
    for trade in trades:
        if symbol is not None and isinstance(trade, dict) and trade.get("symbol") not in (None, symbol):
            out.reject("unknown symbol", trade)
            continue
        try:
            row = trade_row(trade, contract_size=contract_size)
        except Rejected as exc:
            out.reject(exc.reason, trade)
            continue
        if row.trade_id in seen:
            out.reject("duplicate in batch", trade)
            continue
        seen.add(row.trade_id)
        converted.append(row)
    checked = trades_validate(converted, now_ms=now_ms)
    for reason, count in checked.rejected.items():
        out.reject(reason, checked.examples.get(reason), count)
    out.rows = checked.rows
    if out.rows:
        out.max_id = max(r.trade_id for r in out.rows)
        out.max_time_ms = max(r.time_ms for r in out.rows)
    return out


def _levels(levels, scale: Decimal | None) -> tuple[tuple[str, str], ...]:
    out = []
    for level in levels or ():
        price, qty = num_str(level[0]), num_str(level[1])
        if price is None or qty is None:
            continue
        out.append((price, _scaled(qty, scale) if scale is not None else qty))
    return tuple(out)


def book_summary(book: dict, *, time_ms: int | None = None, contract_size: Decimal | None = None,
                 bands: tuple[float, ...] = DEFAULT_BANDS) -> BookSummary | None:
    """Top of book and banded quote depth of a ccxt order book; None if empty or crossed.

    Amounts in contracts (OKX swaps) are scaled to base units first, so depth is in quote
    currency on every exchange.
    """
    ts = time_ms if time_ms is not None else book.get("timestamp")
    if ts is None:
        return None
    snap = DepthSnapshotMsg(
        last_update_id=int(book.get("nonce") or 0),
        bids=_levels(book.get("bids"), contract_size),
        asks=_levels(book.get("asks"), contract_size),
        time_ms=int(ts),
    )
    ob = OrderBook()
    ob.load_snapshot(snap)
    return ob.summary(int(ts), tuple(bands))
