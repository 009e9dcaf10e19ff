"""Local Binance order book rebuilt from a REST snapshot plus depth diffs.

Pure Python (no Django) so replay, the live collector and tests share one implementation.
Sequencing follows Binance's documented "manage a local order book" procedures exactly,
because a book that silently misses one diff drifts from the exchange and every pressure
metric built on it becomes wrong without anyone noticing. Gaps are therefore loud
(:class:`SequenceGap`) and :class:`BookSynchronizer` turns them into a resync request.

Each side is kept as parallel ascending lists (price, qty, price*qty) maintained with
``bisect``: updates are a C-level list insert/delete, and banded depth is a ``sum`` over a
list slice, which keeps a summary well under a millisecond even for a 5000-level futures
book. The original exchange strings are kept per level so best bid/ask are reported exactly.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from apps.markets.feeds.binance import DepthDiffMsg, DepthSnapshotMsg

__all__ = ["DEFAULT_BANDS", "BookSummary", "BookSynchronizer", "OrderBook", "SequenceGap"]

DEFAULT_BANDS: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0)


class SequenceGap(Exception):
    """A diff does not chain onto the book: updates were missed and the book is unusable."""

    def __init__(self, message: str, *, last_update_id: int | None, diff: DepthDiffMsg):
        super().__init__(message)
        self.last_update_id = last_update_id
        self.diff = diff


@dataclass(frozen=True, slots=True)
class BookSummary:
    """Top of book (exact strings) and quote-currency depth per band (percent from mid)."""

    time_ms: int
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str
    bid_depth: tuple[float, ...]
    ask_depth: tuple[float, ...]


class _Side:
    """One side of the book: ascending prices with aligned qty and quote notional."""

    __slots__ = ("notional", "prices", "qtys", "raw")

    def __init__(self) -> None:
        self.prices: list[float] = []
        self.qtys: list[float] = []
        self.notional: list[float] = []
        self.raw: dict[float, tuple[str, str]] = {}

    def clear(self) -> None:
        self.prices.clear()
        self.qtys.clear()
        self.notional.clear()
        self.raw.clear()

    def load(self, levels) -> None:
        raw = {}
        for px, qty in levels:
            if float(qty) != 0.0:
                raw[float(px)] = (px, qty)
        self.raw = raw
        self.prices = sorted(raw)
        self.qtys = [float(raw[p][1]) for p in self.prices]
        self.notional = [p * q for p, q in zip(self.prices, self.qtys, strict=True)]

    def update(self, levels) -> None:
        prices, qtys, notional, raw = self.prices, self.qtys, self.notional, self.raw
        for px, qty in levels:
            p = float(px)
            q = float(qty)
            i = bisect_left(prices, p)
            if i < len(prices) and prices[i] == p:
                if q == 0.0:
                    del prices[i], qtys[i], notional[i], raw[p]
                else:
                    qtys[i] = q
                    notional[i] = p * q
                    raw[p] = (px, qty)
            elif q != 0.0:
                prices.insert(i, p)
                qtys.insert(i, q)
                notional.insert(i, p * q)
                raw[p] = (px, qty)
            # else: removal of a level we never had -- normal on Binance, not an error.

    def _exact(self, i: int) -> Decimal:
        return Decimal(self.raw[self.prices[i]][0])

    def first_at_or_above(self, edge: Decimal) -> int:
        """Index of the first level whose exact price is >= edge."""
        i = bisect_left(self.prices, float(edge))
        while i > 0 and self._exact(i - 1) >= edge:
            i -= 1
        while i < len(self.prices) and self._exact(i) < edge:
            i += 1
        return i

    def first_above(self, edge: Decimal) -> int:
        """Index of the first level whose exact price is > edge."""
        i = bisect_right(self.prices, float(edge))
        while i > 0 and self._exact(i - 1) > edge:
            i -= 1
        while i < len(self.prices) and self._exact(i) <= edge:
            i += 1
        return i


class OrderBook:
    """One symbol's book, rebuilt from a snapshot and depth diffs.

    ``last_update_id`` is the id the book currently reflects: the snapshot's ``lastUpdateId``
    until the first diff is applied, then the ``u`` of the last applied diff.
    """

    __slots__ = ("_asks", "_bids", "_chained", "last_update_id", "symbol")

    def __init__(self, symbol: str | None = None):
        self.symbol = symbol
        self._bids = _Side()
        self._asks = _Side()
        self.last_update_id: int | None = None
        self._chained = False  # True once the first post-snapshot diff has been applied

    @property
    def bids(self) -> dict[float, float]:
        """Bid levels as a new ``{price: qty}`` dict (a copy; O(n), meant for inspection)."""
        return dict(zip(self._bids.prices, self._bids.qtys, strict=True))

    @property
    def asks(self) -> dict[float, float]:
        """Ask levels as a new ``{price: qty}`` dict (a copy; O(n), meant for inspection)."""
        return dict(zip(self._asks.prices, self._asks.qtys, strict=True))

    # ------------------------------------------------------------------ state changes

    def clear(self) -> None:
        """Forget everything; the book is unusable until the next snapshot."""
        self._bids.clear()
        self._asks.clear()
        self.last_update_id = None
        self._chained = False

    @property
    def has_snapshot(self) -> bool:
        return self.last_update_id is not None

    def load_snapshot(self, snap: DepthSnapshotMsg) -> None:
        """Replace the book with a REST snapshot; the next diff must straddle its id."""
        self.clear()
        self._bids.load(snap.bids)
        self._asks.load(snap.asks)
        self.last_update_id = snap.last_update_id

    def apply_diff(self, diff: DepthDiffMsg) -> bool:
        """Apply one depth diff under Binance's rules; False if it was stale (already covered).

        Spot (no ``pu``): drop ``u <= lastUpdateId``; the first applied diff needs
        ``U <= lastUpdateId + 1 <= u``; later ones need ``U == previous u + 1``.
        USD-M futures (``pu`` present): drop ``u < lastUpdateId``; the first applied diff needs
        ``U <= lastUpdateId <= u``; later ones need ``pu == previous u``.
        Raises :class:`SequenceGap` (book left untouched) when the chain is broken.
        """
        last = self.last_update_id
        if last is None:
            raise RuntimeError("apply_diff before load_snapshot")
        u = diff.final_id
        if diff.prev_final_id is None:  # spot
            if u <= last:
                return False
            if self._chained:
                if diff.first_id != last + 1:
                    raise SequenceGap(
                        f"spot gap: U={diff.first_id} but previous u={last}", last_update_id=last, diff=diff
                    )
            elif diff.first_id > last + 1:
                raise SequenceGap(
                    f"spot first diff U={diff.first_id} > lastUpdateId+1={last + 1}",
                    last_update_id=last,
                    diff=diff,
                )
        else:  # futures
            if self._chained:
                # Already-applied ids: a redelivered diff is a duplicate, not a gap.
                if u <= last:
                    return False
                if diff.prev_final_id != last:
                    raise SequenceGap(
                        f"futures gap: pu={diff.prev_final_id} but previous u={last}",
                        last_update_id=last,
                        diff=diff,
                    )
            else:
                if u < last:
                    return False
                if diff.first_id > last:
                    raise SequenceGap(
                        f"futures first diff U={diff.first_id} > lastUpdateId={last}",
                        last_update_id=last,
                        diff=diff,
                    )
        self._bids.update(diff.bids)
        self._asks.update(diff.asks)
        self.last_update_id = u
        self._chained = True
        return True

    def to_snapshot(self, time_ms: int | None = None) -> DepthSnapshotMsg:
        """Export the current book as a snapshot message (exact strings, best levels first).

        Useful for replay checkpoints and for seeding another book at a known update id.
        """
        if self.last_update_id is None:
            raise RuntimeError("to_snapshot on an empty book")
        bids = tuple(self._bids.raw[p] for p in reversed(self._bids.prices))
        asks = tuple(self._asks.raw[p] for p in self._asks.prices)
        return DepthSnapshotMsg(self.last_update_id, bids, asks, time_ms, self.symbol)

    # ------------------------------------------------------------------ reads

    def best_bid(self) -> tuple[str, str] | None:
        """Best bid as the exchange's (price, qty) strings, or None if the side is empty."""
        side = self._bids
        return side.raw[side.prices[-1]] if side.prices else None

    def best_ask(self) -> tuple[str, str] | None:
        """Best ask as the exchange's (price, qty) strings, or None if the side is empty."""
        side = self._asks
        return side.raw[side.prices[0]] if side.prices else None

    def mid(self) -> float | None:
        if not self._bids.prices or not self._asks.prices:
            return None
        return (self._bids.prices[-1] + self._asks.prices[0]) / 2.0

    def depth_bands(self, bands: tuple[float, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Quote-currency depth (sum price*qty) within each band, in percent of mid.

        Bid levels count when ``price >= mid*(1-pct/100)``, ask levels when
        ``price <= mid*(1+pct/100)``, compared exactly: the edges are computed in Decimal from the
        exchange's price strings, so a level exactly on an edge is always in (in float,
        2500.0 * 1.005 = 2512.4999999999995 would leave an ask at 2512.50 out). Each band is one
        bisect, a check of the levels beside it, and a C-level ``sum`` over precomputed notionals.
        """
        bids, asks = self._bids, self._asks
        if not bids.prices or not asks.prices:
            zeros = tuple(0.0 for _ in bands)
            return zeros, zeros
        mid2 = Decimal(bids.raw[bids.prices[-1]][0]) + Decimal(asks.raw[asks.prices[0]][0])  # 2 x mid
        bid, ask = [], []
        for band in bands:
            pct = Decimal(str(band))
            lo = bids.first_at_or_above(mid2 * (100 - pct) / 200)
            hi = asks.first_above(mid2 * (100 + pct) / 200)
            bid.append(sum(bids.notional[lo:]))
            ask.append(sum(asks.notional[:hi]))
        return tuple(bid), tuple(ask)

    def depth_within(self, pct: float) -> tuple[float, float]:
        """(bid, ask) quote depth within ``pct`` percent of mid; (0, 0) if a side is empty."""
        (bid,), (ask,) = self.depth_bands((pct,))
        return bid, ask

    def summary(self, time_ms: int, bands: tuple[float, ...] = DEFAULT_BANDS) -> BookSummary | None:
        """Snapshot of top of book and banded depth; None if a side is empty or the book is crossed."""
        bp, ap = self._bids.prices, self._asks.prices
        if not bp or not ap:
            return None
        if bp[-1] >= ap[0]:
            return None  # crossed/locked: never valid on Binance, so don't publish it
        bid_px, bid_qty = self.best_bid()
        ask_px, ask_qty = self.best_ask()
        bid_depth, ask_depth = self.depth_bands(tuple(bands))
        return BookSummary(time_ms, bid_px, bid_qty, ask_px, ask_qty, bid_depth, ask_depth)


class BookSynchronizer:
    """Drive one symbol's :class:`OrderBook` from diffs and snapshots in receive order.

    Implements Binance's procedure: buffer diffs until a snapshot arrives, load it, replay
    the buffer (stale diffs are dropped), then apply live diffs. On a :class:`SequenceGap`
    the book is cleared, ``synced`` becomes False, ``gaps`` is incremented and
    ``needs_snapshot`` is set so the caller fetches a fresh snapshot; diffs are buffered
    again meanwhile (the offending diff included, since it may chain onto the new snapshot).
    """

    def __init__(
        self,
        symbol: str | None = None,
        bands: tuple[float, ...] = DEFAULT_BANDS,
        max_buffer: int = 10_000,
    ):
        self.symbol = symbol.upper() if symbol else None
        self.bands = tuple(bands)
        self.book = OrderBook(self.symbol)
        self.synced = False
        self.needs_snapshot = True
        self.gaps = 0
        self.stale_dropped = 0
        self.applied = 0
        self.snapshots_ignored = 0
        # Bounded so a long outage cannot eat memory; losing the oldest diffs is harmless
        # because the snapshot that ends the outage must be newer than them anyway.
        self._buffer: deque[DepthDiffMsg] = deque(maxlen=max_buffer)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def _check_symbol(self, symbol: str | None) -> None:
        if self.symbol and symbol and symbol.upper() != self.symbol:
            raise ValueError(f"{symbol} message fed to {self.symbol} synchronizer")

    def _desync(self, pending: list[DepthDiffMsg]) -> None:
        self.gaps += 1
        self.synced = False
        self.needs_snapshot = True
        self.book.clear()
        self._buffer.extend(pending)

    def _apply(self, diff: DepthDiffMsg) -> bool:
        if self.book.apply_diff(diff):
            self.applied += 1
            return True
        self.stale_dropped += 1
        return False

    def on_diff(self, diff: DepthDiffMsg) -> BookSummary | None:
        """Feed one diff; returns the new summary if it was applied, else None."""
        self._check_symbol(diff.symbol)
        if not self.synced:
            self._buffer.append(diff)
            return None
        try:
            applied = self._apply(diff)
        except SequenceGap:
            self._desync([diff])
            return None
        return self.book.summary(diff.event_time_ms, self.bands) if applied else None

    def on_snapshot(self, snap: DepthSnapshotMsg) -> BookSummary | None:
        """Load a snapshot and replay buffered diffs; returns the resulting summary (or None).

        A snapshot no newer than a synced book is ignored (counted in ``snapshots_ignored``):
        reloading it would move the book backwards.
        """
        self._check_symbol(snap.symbol)
        if self.synced and self.book.last_update_id is not None:
            if snap.last_update_id <= self.book.last_update_id:
                self.snapshots_ignored += 1
                return None
        self.book.load_snapshot(snap)
        self.synced = True
        self.needs_snapshot = False
        pending = list(self._buffer)
        self._buffer.clear()
        last_applied: DepthDiffMsg | None = None
        for i, diff in enumerate(pending):
            try:
                if self._apply(diff):
                    last_applied = diff
            except SequenceGap:
                # Snapshot older than the buffered stream (e.g. buffer overflowed): try again.
                self._desync(pending[i:])
                return None
        time_ms = last_applied.event_time_ms if last_applied else snap.time_ms
        if time_ms is None:
            return None
        return self.book.summary(time_ms, self.bands)
