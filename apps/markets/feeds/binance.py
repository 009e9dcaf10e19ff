"""Parse Binance raw websocket recordings into small typed messages.

Pure Python on purpose (no Django): the same code parses recorded files for replay and
live frames for the collector, and it must be testable without a database.

Recording format, one message per line: ``<local_receive_ts_ns> <raw JSON>``. The JSON is
either a combined-stream envelope ``{"stream": "btcusdt@trade", "data": {...}}`` or the REST
depth snapshot ``{"lastUpdateId": ..., "bids": [...], "asks": [...]}``.

Prices and quantities stay as the exchange's decimal strings: they are exact, and anything
that needs money-grade arithmetic can build a ``Decimal`` from them without float noise.
Every numeric string is checked against a strict plain-decimal pattern, which rejects
``NaN``, ``Infinity``, signs, exponents, underscores and whitespace in one go.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain
from pathlib import Path

import orjson

__all__ = [
    "MAX_PRICE",
    "MAX_QTY",
    "BookTickerMsg",
    "DepthDiffMsg",
    "DepthSnapshotMsg",
    "FileStats",
    "MalformedMessage",
    "TradeMsg",
    "iter_file",
    "parse_line",
    "parse_payload",
    "parse_raw_line",
]

# Sanity caps: a value at or beyond these is a corrupt frame, not a market move. They are
# enforced by the patterns below (at most 9 integer digits), which keeps validation cheap
# enough for 1000-level snapshots and 0ms futures diffs.
MAX_QTY = Decimal("1e9")
MAX_PRICE = Decimal("1e9")

# Binance always sends plain non-negative decimals ("61837.63000000"); anything else is garbage.
_ANY_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_NONNEG = r"[0-9]{1,9}(?:\.[0-9]{1,20})?"
_POSITIVE = r"(?=[0-9.]*[1-9])" + _NONNEG  # same, with at least one non-zero digit
_NONNEG_RE = re.compile(_NONNEG)
_POSITIVE_RE = re.compile(_POSITIVE)
# A whole side of a book, flattened and comma-joined: "px,qty,px,qty,..." (empty allowed).
_LEVELS_RE = re.compile(rf"(?:{_POSITIVE},{_NONNEG}(?:,{_POSITIVE},{_NONNEG})*)?")

Level = tuple[str, str]


class MalformedMessage(ValueError):
    """A line or payload that cannot be trusted; ``reason`` says why (for logs and counters)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    @property
    def kind(self) -> str:
        """The reason's first three words: what malformed lines are counted under."""
        return " ".join(self.reason.split()[:3])


@dataclass(frozen=True, slots=True)
class TradeMsg:
    """One public trade. ``taker_sell`` is Binance's ``m`` (buyer is maker => the taker sold)."""

    symbol: str
    trade_id: int
    time_ms: int
    price: str
    qty: str
    taker_sell: bool


@dataclass(frozen=True, slots=True)
class BookTickerMsg:
    """Best bid/ask. ``update_id`` is the order-book update id, comparable with depth ``u``.

    ``time_ms`` is None on spot (Binance sends no timestamp there); futures use ``T`` (else ``E``).
    """

    symbol: str
    update_id: int
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str
    time_ms: int | None


@dataclass(frozen=True, slots=True)
class DepthDiffMsg:
    """A ``depthUpdate`` covering update ids ``first_id`` (U) .. ``final_id`` (u).

    ``prev_final_id`` (``pu``) is only present on USD-M futures; its presence selects the
    futures sequencing rule in :mod:`apps.markets.orderbook`.
    """

    symbol: str
    event_time_ms: int
    first_id: int
    final_id: int
    prev_final_id: int | None
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class DepthSnapshotMsg:
    """REST depth snapshot. It carries no symbol on the wire, so ``symbol`` comes from a hint.

    ``time_ms`` is the futures ``T`` (else ``E``); spot snapshots have no timestamp.
    """

    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    time_ms: int | None
    symbol: str | None = None


Message = TradeMsg | BookTickerMsg | DepthDiffMsg | DepthSnapshotMsg


# --------------------------------------------------------------------------- field helpers


def _get(data: dict, key: str, what: str):
    try:
        return data[key]
    except KeyError:
        raise MalformedMessage(f"missing field {key!r} in {what}") from None


def _int(data: dict, key: str, what: str) -> int:
    value = _get(data, key, what)
    # bool is an int subclass; a JSON true/false is never a valid id or timestamp.
    if type(value) is not int or value < 0:
        raise MalformedMessage(f"field {key!r} in {what} is not a non-negative integer: {value!r}")
    return value


def _opt_int(data: dict, key: str, what: str) -> int | None:
    if key not in data or data[key] is None:
        return None
    return _int(data, key, what)


def _event_time(data: dict, what: str) -> int | None:
    """The transaction time ``T``, else the event time ``E``; None when the message has neither."""
    time_ms = _opt_int(data, "T", what)
    return _opt_int(data, "E", what) if time_ms is None else time_ms


def _decimal_str(value, name: str, what: str, *, allow_zero: bool) -> str:
    """Validate an exchange decimal string and return it unchanged (exactness is the point)."""
    if type(value) is str and (_NONNEG_RE if allow_zero else _POSITIVE_RE).fullmatch(value):
        return value
    # Slow path only to give a precise reason.
    if type(value) is not str or _ANY_DECIMAL.fullmatch(value) is None:
        raise MalformedMessage(f"invalid {name} in {what}: {value!r}")
    int_part, _, frac = value.partition(".")
    if len(int_part) > 9:
        raise MalformedMessage(f"absurd {name} in {what} (must be < 1e9): {value!r}")
    if len(frac) > 20:
        raise MalformedMessage(f"invalid {name} in {what} (too many decimals): {value!r}")
    raise MalformedMessage(f"non-positive {name} in {what}: {value!r}")


def _levels(raw, side: str, what: str) -> tuple[Level, ...]:
    """Validate a list of [price, qty] pairs; prices > 0, qty >= 0 (0 deletes a level)."""
    if type(raw) is not list:
        raise MalformedMessage(f"{side}s in {what} is not a list")
    if not raw:
        return ()
    try:
        # Fast path: one regex over the whole side instead of two calls per level. The comma
        # count guards against a value that itself contains commas fooling the pattern.
        if set(map(type, raw)) <= {list} and set(map(len, raw)) <= {2}:
            joined = ",".join(chain.from_iterable(raw))
            if joined.count(",") == 2 * len(raw) - 1 and _LEVELS_RE.fullmatch(joined):
                return tuple(map(tuple, raw))
    except TypeError:  # a non-string value; the slow path names it
        pass
    for level in raw:  # slow path: find the offending level and say what is wrong with it
        if type(level) is not list or len(level) != 2:
            raise MalformedMessage(f"bad {side} level in {what}: {level!r}")
        _decimal_str(level[0], f"{side} price", what, allow_zero=False)
        _decimal_str(level[1], f"{side} qty", what, allow_zero=True)
    raise MalformedMessage(f"bad {side} levels in {what}")  # pragma: no cover - defensive


def _symbol(data: dict, fallback: str | None, what: str) -> str:
    sym = data.get("s", fallback)
    if not isinstance(sym, str) or not sym:
        raise MalformedMessage(f"missing or invalid field 's' in {what}")
    return sym.upper()


# --------------------------------------------------------------------------- per-type parsers


def _parse_trade(data: dict, fallback_symbol: str | None) -> TradeMsg:
    what = "trade"
    maker = _get(data, "m", what)
    if type(maker) is not bool:
        raise MalformedMessage(f"field 'm' in trade is not a boolean: {maker!r}")
    return TradeMsg(
        symbol=_symbol(data, fallback_symbol, what),
        trade_id=_int(data, "t", what),
        time_ms=_int(data, "T", what),
        price=_decimal_str(_get(data, "p", what), "price", what, allow_zero=False),
        qty=_decimal_str(_get(data, "q", what), "qty", what, allow_zero=False),
        taker_sell=maker,
    )


def _parse_book_ticker(data: dict, fallback_symbol: str | None) -> BookTickerMsg:
    what = "bookTicker"
    time_ms = _event_time(data, what)
    return BookTickerMsg(
        symbol=_symbol(data, fallback_symbol, what),
        update_id=_int(data, "u", what),
        bid_price=_decimal_str(_get(data, "b", what), "bid price", what, allow_zero=False),
        bid_qty=_decimal_str(_get(data, "B", what), "bid qty", what, allow_zero=True),
        ask_price=_decimal_str(_get(data, "a", what), "ask price", what, allow_zero=False),
        ask_qty=_decimal_str(_get(data, "A", what), "ask qty", what, allow_zero=True),
        time_ms=time_ms,
    )


def _parse_depth_diff(data: dict, fallback_symbol: str | None) -> DepthDiffMsg:
    what = "depthUpdate"
    first_id = _int(data, "U", what)
    final_id = _int(data, "u", what)
    if final_id < first_id:
        raise MalformedMessage(f"depthUpdate has u < U ({final_id} < {first_id})")
    return DepthDiffMsg(
        symbol=_symbol(data, fallback_symbol, what),
        event_time_ms=_int(data, "E", what),
        first_id=first_id,
        final_id=final_id,
        prev_final_id=_opt_int(data, "pu", what),
        bids=_levels(_get(data, "b", what), "bid", what),
        asks=_levels(_get(data, "a", what), "ask", what),
    )


def _parse_snapshot(data: dict, symbol_hint: str | None) -> DepthSnapshotMsg:
    what = "depth snapshot"
    time_ms = _event_time(data, what)
    return DepthSnapshotMsg(
        last_update_id=_int(data, "lastUpdateId", what),
        bids=_levels(_get(data, "bids", what), "bid", what),
        asks=_levels(_get(data, "asks", what), "ask", what),
        time_ms=time_ms,
        symbol=symbol_hint.upper() if symbol_hint else None,
    )


_EVENT_PARSERS = {
    "trade": _parse_trade,
    "bookTicker": _parse_book_ticker,
    "depthUpdate": _parse_depth_diff,
}


def _stream_kind(stream: str) -> str | None:
    """Map a stream name's suffix to an event type; None when we do not handle it."""
    _, _, suffix = stream.partition("@")
    if suffix == "trade":
        return "trade"
    if suffix == "bookTicker":
        return "bookTicker"
    # Diff depth: "depth", "depth@100ms", "depth@0ms", ... but not partial "depth20@100ms".
    if suffix == "depth" or suffix.startswith("depth@"):
        return "depthUpdate"
    return None


# --------------------------------------------------------------------------- public entry points


def parse_raw_line(line: str | bytes) -> tuple[int, dict]:
    """Split ``<receive_ns> <json>`` into the receive timestamp and the decoded JSON object."""
    if isinstance(line, str):
        try:
            line = line.encode()
        except UnicodeEncodeError:
            raise MalformedMessage("line is not valid UTF-8 text") from None
    ts_part, sep, body = line.strip().partition(b" ")
    if not sep or not body:
        raise MalformedMessage("line is not '<receive_ns> <json>'")
    if not ts_part.isdigit():
        raise MalformedMessage(f"receive timestamp is not an integer: {ts_part[:32]!r}")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedMessage(f"JSON payload is {type(payload).__name__}, not an object")
    return int(ts_part), payload


def parse_payload(payload: dict, symbol_hint: str | None = None) -> Message:
    """Turn one decoded payload (combined-stream envelope, raw event, or REST snapshot) into a message.

    ``symbol_hint`` names the symbol for payloads that do not carry one (the REST snapshot).
    """
    if not isinstance(payload, dict):
        raise MalformedMessage(f"payload is {type(payload).__name__}, not an object")
    if "stream" in payload:
        stream = payload["stream"]
        if not isinstance(stream, str):
            raise MalformedMessage(f"stream name is not a string: {stream!r}")
        kind = _stream_kind(stream)
        if kind is None:
            raise MalformedMessage(f"unknown stream {stream!r}")
        data = payload.get("data")
        if not isinstance(data, dict):
            raise MalformedMessage(f"missing or non-object 'data' in stream {stream!r}")
        event = data.get("e")
        # Spot bookTicker has no "e"; when present it must agree with the stream name.
        if event is not None and event != kind:
            raise MalformedMessage(f"event type {event!r} does not match stream {stream!r}")
        stream_symbol = stream.partition("@")[0] or symbol_hint
        return _EVENT_PARSERS[kind](data, stream_symbol)
    if "lastUpdateId" in payload:
        return _parse_snapshot(payload, symbol_hint)
    # Raw (non-combined) stream frames: dispatch on the event type.
    event = payload.get("e")
    if event is None and {"u", "b", "B", "a", "A"} <= payload.keys():
        event = "bookTicker"  # spot bookTicker frames carry no "e"
    parser = _EVENT_PARSERS.get(event) if isinstance(event, str) else None
    if parser is None:
        raise MalformedMessage(f"unknown stream (event type {event!r})")
    return parser(payload, symbol_hint)


@dataclass
class FileStats:
    """Counters filled in by :func:`iter_file` while it is consumed.

    Malformed lines are skipped rather than aborting a multi-hour replay; these counters
    make the skipping visible (``reasons`` keeps the first words of each reason).
    """

    lines: int = 0
    blank: int = 0
    parsed: int = 0
    malformed: int = 0
    by_type: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)


def parse_line(line: str | bytes, symbol_hint: str | None = None) -> tuple[int, Message]:
    """One recorded line: its receive time (ns) and its message (parse_raw_line, then parse_payload)."""
    receive_ns, payload = parse_raw_line(line)
    return receive_ns, parse_payload(payload, symbol_hint)


def _open(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    # Sniff gzip by magic bytes, not by suffix, so a mis-named file still reads.
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def iter_file(
    path: str | Path,
    *,
    symbol_hint: str | None = None,
    stats: FileStats | None = None,
) -> Iterator[tuple[int, Message]]:
    """Yield ``(receive_ns, message)`` for each valid line of a recording (.gz or plain).

    Malformed lines are skipped and counted in ``stats`` (pass your own :class:`FileStats`
    to read the counts; they are complete once the iterator is exhausted). Without a
    ``symbol_hint`` the REST snapshot is labelled with the last stream symbol seen, which
    is right for the single-symbol recordings we have.
    """
    if stats is None:
        stats = FileStats()
    last_symbol = symbol_hint
    with _open(Path(path)) as fh:
        for raw in fh:
            stats.lines += 1
            if not raw.strip():
                stats.blank += 1
                continue
            try:
                receive_ns, msg = parse_line(raw, last_symbol)
            except MalformedMessage as exc:
                stats.malformed += 1
                stats.reasons[exc.kind] += 1
                continue
            if symbol_hint is None and not isinstance(msg, DepthSnapshotMsg):
                last_symbol = msg.symbol
            stats.parsed += 1
            stats.by_type[type(msg).__name__] += 1
            yield receive_ns, msg
