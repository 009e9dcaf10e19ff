"""Our patches to ccxt and ccxt.pro internals, in one place, pinned to the ccxt they were written for.

Written and tested against ccxt ``CCXT_VERSION`` (pyproject pins exactly that version). They
reach into what ccxt does not promise to keep:

- ``Exchange.on_rest_response`` (to keep the HTTP status and headers, for the rate-limit machine);
- ccxt.pro ``handle_message`` and the WebSocket ``Client.handle_text_or_binary_message`` (so one
  frame ccxt cannot parse does not end the connection);
- bybit's and okx's ``handle_order_book``, ``orderbooks``, and the client's ``subscriptions``,
  ``futures``, ``reject`` and ``send``, with ccxt's message-hash formats (``orderbook:SYMBOL`` on
  bybit, ``CHANNEL:SYMBOL`` on okx) and okx's ``"resync"`` subscription marker;
- ``last_json_response`` (``enableLastJsonResponse``) and ``parse_trade`` for pages ccxt cannot parse.

:func:`internals_missing` lists what of that is gone from the installed ccxt;
tests/exchanges/test_ccxt_patches.py fails with that list, so an upgrade of ccxt is a deliberate
step: run the exchange tests, fix what moved, then move ``CCXT_VERSION`` and the pin together.
"""

from __future__ import annotations

import asyncio
import inspect
import zlib
from collections import deque

import ccxt
import ccxt.pro
from ccxt.async_support.base.ws.client import Client

CCXT_VERSION = "4.5.90"
# The ccxt.pro classes whose receive loop Guarded wraps (every exchange ADAPTERS streams from).
GUARDED_EXCHANGES = ("binance", "bybit", "okx", "coinbase", "kraken", "deribit")


class Tracking:
    """Mixed into the ccxt class: keeps the last HTTP status and headers for the rate-limit machine.

    ccxt maps statuses to exception classes but drops Retry-After and folds Binance's 418 (IP
    ban) into the same class as a 429 when the body carries code -1003; the status decides here.
    """

    last_status: int | None = None
    last_headers: dict | None = None

    def on_rest_response(self, code, reason, url, method, response_headers, response_body, request_headers,
                         request_body):
        self.last_status = int(code) if code is not None else None
        self.last_headers = dict(response_headers or {})
        return super().on_rest_response(code, reason, url, method, response_headers, response_body,
                                        request_headers, request_body)


class Guarded(Tracking):
    """Mixed into the ccxt.pro class: one frame ccxt cannot parse must not end the connection.

    ccxt.pro parses frames in its receive loop's callback; an exception there (a NaN price makes
    its Precise maths raise, a frame that is not JSON) stops the loop, and the socket then goes
    silent for good. Here such a frame is set aside with its reason and the loop goes on.
    """

    def __init__(self, config=None):
        super().__init__(config or {})
        self.rejected_messages: deque = deque(maxlen=10_000)

    def _reject_message(self, message, reason: str) -> None:
        self.rejected_messages.append((reason, message))

    def handle_message(self, client, message):
        try:
            return super().handle_message(client, message)
        except Exception as exc:  # noqa: BLE001 - whatever ccxt raised, only this frame is lost
            self._reject_message(message, f"unparseable message ({type(exc).__name__})")
            return None

    def client(self, url):
        client = super().client(url)
        if not getattr(client, "_pw_guarded", False):
            decode_and_handle = client.handle_text_or_binary_message

            def guarded(data):
                try:
                    decode_and_handle(data)
                except ValueError:
                    self._reject_message(data, "not JSON")

            client.handle_text_or_binary_message = guarded
            client._pw_guarded = True
        return client


class BybitGuarded(Guarded):
    """ccxt.pro bybit applies ``orderbook.N`` deltas without looking at their update id ``u``, which
    rises by exactly one per message of a topic: a lost delta would leave a wrong book for good.
    Here a jump drops the book and fails the watch with InvalidNonce (what ccxt raises for other
    exchanges' gaps); the topic is unsubscribed so the next watch subscribes again and Bybit
    answers with a fresh snapshot."""

    def __init__(self, config=None):
        super().__init__(config)
        self._book_u: dict[tuple[str, str], int] = {}
        self.book_gaps: dict[str, Exception] = {}

    def handle_order_book(self, client, message):
        topic = message.get("topic") or ""
        data = message.get("data") if isinstance(message.get("data"), dict) else {}
        u, key = data.get("u"), (client.url, topic)
        if message.get("type") == "snapshot" or not isinstance(u, int):
            self._book_u.pop(key, None)
            if isinstance(u, int):
                self._book_u[key] = u
            return super().handle_order_book(client, message)
        last = self._book_u.get(key)
        if last is None:
            return None  # no snapshot on this connection yet (or dropped after a gap): nothing to apply to
        if u == last + 1:
            self._book_u[key] = u
            return super().handle_order_book(client, message)
        del self._book_u[key]
        market = self.safe_market(data.get("s"), None, None, "spot" if "spot" in client.url else "contract")
        symbol = market["symbol"]
        message_hash = "orderbook:" + symbol
        self.orderbooks.pop(symbol, None)
        client.subscriptions.pop(message_hash, None)
        sent = asyncio.ensure_future(client.send({"op": "unsubscribe", "req_id": self.request_id(), "args": [topic]}))
        sent.add_done_callback(lambda f: f.cancelled() or f.exception())  # a closed socket resubscribes anyway
        error = ccxt.InvalidNonce(f"{self.id} {topic}: update id jumped {last} -> {u}")
        if message_hash in client.futures:
            client.reject(error, message_hash)
        else:
            # Nobody is waiting: ccxt would park the error in a future that then fails every watch
            # until the next snapshot; the adapter's next watch_order_book raises it once instead.
            self.book_gaps[symbol] = error
        return None


def okx_checksum(bids: list, asks: list) -> int:
    """OKX's book checksum: CRC32 of the best 25 bids and asks interleaved as ``px:sz`` (the
    exchange's own strings), as a signed 32-bit integer."""
    parts = []
    for i in range(25):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += asks[i]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


class OkxGuarded(Guarded):
    """ccxt.pro okx checks ``prevSeqId`` but not the ``checksum`` OKX sends with every book message,
    and its book keeps floats, from which the checksum (over the exchange's strings) cannot be
    recomputed. Here a mirror of each book's levels as strings is kept; a mismatch is handled like
    a sequence gap: the book is dropped and marked for resync, and the watch fails with
    ChecksumError (an InvalidNonce), so the next watch gets a fresh snapshot."""

    def __init__(self, config=None):
        super().__init__(config)
        self._mirrors: dict[tuple[str, str, str], tuple[dict, dict]] = {}

    def handle_order_book(self, client, message):
        arg = message.get("arg") or {}
        channel, inst = arg.get("channel") or "", arg.get("instId")
        action, data = message.get("action"), message.get("data")
        if channel not in ("books", "books-l2-tbt", "books50-l2-tbt") or not isinstance(data, list) or not data:
            return super().handle_order_book(client, message)
        key = (client.url, channel, inst)
        if action == "snapshot":
            self._mirrors[key] = ({}, {})
        mirror = self._mirrors.get(key)
        if mirror is None:
            return super().handle_order_book(client, message)  # no snapshot yet: ccxt ignores it too
        for update in data:
            for side, levels in zip(mirror, (update.get("bids") or [], update.get("asks") or []), strict=True):
                for level in levels:
                    if float(level[1]) == 0:
                        side.pop(float(level[0]), None)
                    else:
                        side[float(level[0])] = [level[0], level[1]]
            expected = update.get("checksum")
            if expected is None:
                continue
            bids, asks = mirror
            got = okx_checksum([bids[p] for p in sorted(bids, reverse=True)[:25]], [asks[p] for p in sorted(asks)[:25]])
            if got != int(expected):
                del self._mirrors[key]
                symbol = self.safe_symbol(inst)
                message_hash = f"{channel}:{symbol}"
                self.orderbooks.pop(symbol, None)
                client.subscriptions[message_hash] = "resync"  # ccxt's own path: unsubscribe, subscribe
                client.reject(ccxt.ChecksumError(f"{self.id} {channel} {inst}: checksum {got} != {expected}"),
                              message_hash)
                return None
        return super().handle_order_book(client, message)


_TRACKED: dict[tuple[type, type], type] = {}


def tracked(cls: type, mixin: type = Tracking) -> type:
    if (cls, mixin) not in _TRACKED:
        _TRACKED[(cls, mixin)] = type(f"Tracked{cls.__name__}", (mixin, cls), {})
    return _TRACKED[(cls, mixin)]


def okx_book_forget(ex, symbol: str) -> None:
    """After a gap on an okx book channel: forget the failed futures and the stale subscription.

    ccxt.pro okx marks a channel with a gap for "resync" (unsubscribe, then subscribe again for a
    fresh snapshot). When the gap came in a burst with no watch waiting, the error is parked and
    then handed to the resubscribing watch through a future that stays in the client, already
    failed, and the channel stays listed as subscribed: every later watch fails at once and the
    subscribe never goes out. Forgetting both lets the next watch subscribe.
    """
    for client in ex.clients.values():
        for key in [k for k, f in client.futures.items() if _okx_book_hash(k, symbol) and f.done()]:
            del client.futures[key]
        for key in [k for k, v in client.subscriptions.items() if _okx_book_hash(k, symbol) and v != "resync"]:
            del client.subscriptions[key]


def _okx_book_hash(key: str, symbol: str) -> bool:
    return key.startswith(("books", "bbo-tbt")) and key.endswith(":" + symbol)


# --------------------------------------------------------------------------- the guard on the internals


def _params(owner, name: str) -> list[str] | None:
    fn = getattr(owner, name, None)
    return list(inspect.signature(fn).parameters) if callable(fn) else None


def _source_has(owner, name: str, *texts: str) -> bool:
    try:
        source = inspect.getsource(getattr(owner, name))
    except (AttributeError, OSError, TypeError):
        return False
    return all(t in source for t in texts)


def _client_attributes() -> list[str]:
    """The attributes a ccxt.pro client gets when it is made (subscriptions, futures, url...)."""
    async def make() -> list[str]:
        ex = ccxt.pro.bybit()
        try:
            client = ex.client("wss://example.invalid/v5/public/linear")
            return [name for name in ("subscriptions", "futures", "url", "handle_text_or_binary_message")
                    if not hasattr(client, name)]
        finally:
            await ex.close()

    return asyncio.run(make())


def internals_missing() -> list[str]:
    """What the patches above rely on and the installed ccxt lacks (empty: all there)."""
    missing = []
    expected = ["self", "code", "reason", "url", "method", "response_headers", "response_body", "request_headers",
                "request_body"]
    if _params(ccxt.Exchange, "on_rest_response") != expected:
        missing.append(f"ccxt.Exchange.on_rest_response{tuple(expected[1:])}")
    if not _source_has(ccxt.Exchange, "fetch", "self.last_json_response = "):
        missing.append("ccxt.Exchange.fetch setting last_json_response (enableLastJsonResponse)")
    for name in GUARDED_EXCHANGES:
        cls = getattr(ccxt.pro, name, None)
        if cls is None or _params(cls, "handle_message") != ["self", "client", "message"]:
            missing.append(f"ccxt.pro.{name}.handle_message(client, message)")
        if cls is not None and not callable(getattr(cls, "parse_trade", None)):
            missing.append(f"ccxt.pro.{name}.parse_trade")
    for name in ("reject", "send", "resolve"):
        if not callable(getattr(Client, name, None)):
            missing.append(f"ccxt.async_support.base.ws.client.Client.{name}")
    missing += [f"ccxt.pro client attribute {name}" for name in _client_attributes()]
    if not _source_has(ccxt.pro.bybit, "handle_order_book", "'orderbook' + ':' + symbol", "self.orderbooks"):
        missing.append("ccxt.pro.bybit.handle_order_book with message hash 'orderbook:SYMBOL' and self.orderbooks")
    for cls, method in ((ccxt.pro.bybit, "request_id"), (ccxt.pro.bybit, "safe_market"), (ccxt.pro.okx, "safe_symbol")):
        if not callable(getattr(cls, method, None)):
            missing.append(f"ccxt.pro.{cls.__name__}.{method}")
    if not _source_has(ccxt.pro.okx, "handle_order_book", "channel + ':' + symbol", "'resync'"):
        missing.append("ccxt.pro.okx.handle_order_book with message hash 'CHANNEL:SYMBOL' and the 'resync' marker")
    if not _source_has(ccxt.pro.okx, "watch_order_book_for_symbols", "== 'resync'"):
        missing.append("ccxt.pro.okx.watch_order_book_for_symbols resubscribing channels marked 'resync'")
    return missing
