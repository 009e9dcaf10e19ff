"""One interface to every exchange we read, built on ccxt (REST) and ccxt.pro (WebSocket).

ccxt does the wire work: signing-free public requests, market metadata, parsing into its
unified structures, and (in ccxt.pro) order-book maintenance with each exchange's sequence
rules. What ccxt lacks is written here, against the exchange's raw endpoints reached through
ccxt's implicit API methods (``fapiPublicGetFundingRate``, ``publicGetGetVolatilityIndexData``
...), so every request still goes through ccxt's rate limiter, error mapping and base URL.

Adapters return plain data (ccxt dicts or the small dataclasses below); they never touch the
database. ``api_base``/``ws_base`` point every URL of an exchange at another server, keeping
the original host as the first path segment (``https://fapi.binance.com/fapi/v1`` becomes
``http://127.0.0.1:PORT/fapi.binance.com/fapi/v1``): the offline test server routes on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlsplit

import ccxt
import ccxt.pro

__all__ = [
    "ADAPTERS",
    "ExchangeAdapter",
    "FundingPoint",
    "InstrumentSpec",
    "LiquidationPoint",
    "OpenInterestPoint",
    "OptionIVPoint",
    "TakerRatioPoint",
    "TradePage",
    "VolIndexPoint",
    "adapter_for",
]


# --------------------------------------------------------------------------- data shapes


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
class FundingPoint:
    time_ms: int
    rate: str
    next_funding_ms: int | None = None


@dataclass(frozen=True)
class OpenInterestPoint:
    time_ms: int
    oi_base: str | None
    oi_usd: str | None


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


# --------------------------------------------------------------------------- helpers


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


def redirect_url(url: str, base: str, hostname: str | None = None) -> str:
    """``https://host:port/path`` -> ``{base}/host:port/path`` (host kept so one server can route)."""
    if hostname:
        url = url.replace("{hostname}", hostname)
    parts = urlsplit(url)
    return f"{base.rstrip('/')}/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def _redirect_tree(node: Any, base: str, hostname: str | None) -> Any:
    if isinstance(node, dict):
        return {k: _redirect_tree(v, base, hostname) for k, v in node.items()}
    if isinstance(node, str) and "://" in node:
        return redirect_url(node, base, hostname)
    return node


class _Tracking:
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


class _Guarded(_Tracking):
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


class _BybitGuarded(_Guarded):
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


class _OkxGuarded(_Guarded):
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


def _tracked(cls: type, mixin: type = _Tracking) -> type:
    if (cls, mixin) not in _TRACKED:
        _TRACKED[(cls, mixin)] = type(f"Tracked{cls.__name__}", (mixin, cls), {})
    return _TRACKED[(cls, mixin)]


# --------------------------------------------------------------------------- the interface


class ExchangeAdapter:
    """One exchange market (e.g. Binance USD-M) read through ccxt.

    Subclasses set the class attributes and override only what their exchange does differently.
    """

    slug: ClassVar[str]  # our source name, e.g. "binance-usdm"
    exchange: ClassVar[str]  # apps.markets Exchange.slug
    exchange_name: ClassVar[str]
    ccxt_id: ClassVar[str]
    market: ClassVar[str]  # Instrument.market
    kind: ClassVar[str] = "spot"  # Instrument.kind
    ccxt_market_types: ClassVar[tuple[str, ...]] = ("spot",)
    defaults: ClassVar[tuple[InstrumentSpec, ...]] = ()
    # Trade ids rise by exactly one per trade on this market: a jump in a stream means lost messages.
    ids_contiguous: ClassVar[bool] = False
    # "id": pages start after the last stored trade id; "time": after the last stored time.
    cursor_kind: ClassVar[str] = "id"
    trades_page_limit: ClassVar[int] = 1000
    book_limit: ClassVar[int] = 1000
    ws_trade_params: ClassVar[dict] = {}
    ws_book_limit: ClassVar[int | None] = None  # depth of the streamed book (None: ccxt's default)
    pro_mixin: ClassVar[type] = _Guarded
    has_funding: ClassVar[bool] = False
    has_open_interest: ClassVar[bool] = False
    has_liquidation_stream: ClassVar[bool] = False
    has_taker_ratio: ClassVar[bool] = False

    def __init__(self, *, api_base: str | None = None, ws_base: str | None = None, timeout_ms: int = 10_000,
                 rate_limit: bool = True):
        self.api_base = api_base
        self.ws_base = ws_base
        self.timeout_ms = timeout_ms
        self.rate_limit = rate_limit
        self._rest = None

    # ------------------------------------------------------------------ ccxt instances

    def _config(self) -> dict:
        # The last JSON body is kept so a page ccxt cannot parse can still be parsed row by row.
        return {"enableRateLimit": self.rate_limit, "timeout": self.timeout_ms, "options": self._options(),
                "enableLastJsonResponse": True}

    def _options(self) -> dict:
        return {"defaultType": self.ccxt_market_types[0]}

    def _redirect(self, ex) -> None:
        hostname = getattr(ex, "hostname", None)
        api = ex.urls.get("api")
        if self.api_base and isinstance(api, dict):
            ws = api.get("ws")
            redirected = _redirect_tree({k: v for k, v in api.items() if k != "ws"}, self.api_base, hostname)
            if ws is not None:
                redirected["ws"] = _redirect_tree(ws, self.ws_base, hostname) if self.ws_base else ws
            ex.urls["api"] = redirected
        elif self.ws_base and isinstance(api, dict) and "ws" in api:
            api["ws"] = _redirect_tree(api["ws"], self.ws_base, hostname)

    @property
    def rest(self):
        """The synchronous ccxt instance (REST), created once per adapter."""
        if self._rest is None:
            ex = _tracked(getattr(ccxt, self.ccxt_id))(self._config())
            self._redirect(ex)
            self._rest = ex
        return self._rest

    def pro(self):
        """A new ccxt.pro instance (WebSocket + async REST) for the caller's event loop; close it when done."""
        config = self._config()
        # ccxt.pro keeps only the last `tradesLimit` trades between two watch calls (default 1000);
        # a burst bigger than that while the loop is busy would silently drop trades.
        config["options"] = {**config["options"], "tradesLimit": 100_000, "liquidationsLimit": 10_000}
        ex = _tracked(getattr(ccxt.pro, self.ccxt_id), self.pro_mixin)(config)
        self._redirect(ex)
        return ex

    def last_response(self) -> tuple[int | None, dict]:
        ex = self._rest
        return (getattr(ex, "last_status", None), getattr(ex, "last_headers", None) or {}) if ex else (None, {})

    # ------------------------------------------------------------------ symbols

    def ccxt_symbol(self, spec: InstrumentSpec) -> str:
        if self.kind == "perp":
            return f"{spec.base}/{spec.quote}:{spec.quote}"
        return f"{spec.base}/{spec.quote}"

    def market_of(self, ex, spec: InstrumentSpec) -> dict:
        if not ex.markets:
            ex.load_markets()  # sync instances only; ccxt.pro ones get markets from set_markets
        return ex.market(self.ccxt_symbol(spec))

    def contract_size(self, ex, spec: InstrumentSpec) -> Decimal | None:
        """Base units per contract where amounts are in contracts (OKX swaps); None otherwise."""
        market = self.market_of(ex, spec)
        if market.get("contract") and market.get("linear") and market.get("contractSize") not in (None, 1, 1.0):
            return Decimal(num_str(market["contractSize"]))
        return None

    def trade_id(self, trade: dict) -> int | None:
        raw = trade.get("id")
        if raw is None or raw == "":
            return None
        text = str(raw)
        return int(text) if text.isdigit() else synthetic_id(text)

    # ------------------------------------------------------------------ REST: trades and books

    def fetch_trades_tolerant(self, ex, symbol: str, since=None, limit=None, params=None) -> list[dict]:
        """ccxt's fetch_trades; if ccxt cannot parse the page (one NaN makes its Precise maths raise),
        parse the same body row by row, so the good rows survive and each bad one carries its reason."""
        try:
            return ex.fetch_trades(symbol, since, limit, params or {})
        except (ValueError, TypeError, ArithmeticError, KeyError, IndexError) as exc:
            rows = self.raw_trade_rows(ex.last_json_response, ex.market(symbol))
            if rows is None:
                raise ccxt.BadResponse(f"{self.slug}: unparseable trades page: {exc}") from exc
        market = ex.market(symbol)
        out = []
        for row in rows:
            try:
                out.append(ex.parse_trade(row, market))
            except (ValueError, TypeError, ArithmeticError, KeyError, IndexError) as exc:
                out.append({"info": row, "error": f"unparseable trade ({type(exc).__name__})"})
        return out

    def raw_trade_rows(self, response, market: dict) -> list | None:
        """The list of raw trades in a REST body (Binance: the body; OKX: data; Bybit: result.list)."""
        if isinstance(response, list):
            return response
        if isinstance(response, dict):
            if isinstance(response.get("data"), list):
                return response["data"]
            result = response.get("result")
            if isinstance(result, dict):
                if isinstance(result.get("list"), list):
                    return result["list"]
                if isinstance(result.get(market["id"]), list):
                    return result[market["id"]]
        return None

    def trades_page(self, spec: InstrumentSpec, *, after_id: int | None, after_ms: int | None,
                    cursor_token: str | None = None) -> TradePage:
        """Trades after the cursor (id or time). The default serves recent-trades-only exchanges."""
        ex = self.rest
        symbol = self.ccxt_symbol(spec)
        ex.load_markets()
        trades = self.fetch_trades_tolerant(ex, symbol, limit=self.trades_page_limit)
        return self._filter_recent(trades, after_id=after_id, after_ms=after_ms)

    def _filter_recent(self, trades: list[dict], *, after_id: int | None, after_ms: int | None) -> TradePage:
        trades = sorted(trades, key=lambda t: (t.get("timestamp") or 0, self.trade_id(t) or 0))
        full = len(trades) >= self.trades_page_limit
        if self.cursor_kind == "id" and after_id is not None:
            ids = [self.trade_id(t) for t in trades]
            fresh = [t for t, i in zip(trades, ids, strict=True) if i is not None and i > after_id]
            gap = full and bool(ids) and min(i for i in ids if i is not None) > after_id + 1
        elif after_ms is not None:
            # Same-millisecond trades at the cursor may be partly stored; the unique id drops repeats.
            fresh = [t for t in trades if (t.get("timestamp") or 0) >= after_ms]
            gap = full and bool(trades) and (trades[0].get("timestamp") or 0) > after_ms
        else:
            fresh, gap = trades, False
        return TradePage(fresh, more=False, gap=gap)

    def fetch_order_book(self, spec: InstrumentSpec, *, limit: int | None = None) -> dict:
        ex = self.rest
        ex.load_markets()
        return ex.fetch_order_book(self.ccxt_symbol(spec), limit or self.book_limit)

    # ------------------------------------------------------------------ REST: derivatives

    def fetch_funding_rate(self, spec: InstrumentSpec) -> FundingPoint:
        ex = self.rest
        ex.load_markets()
        fr = ex.fetch_funding_rate(self.ccxt_symbol(spec))
        return FundingPoint(int(fr.get("timestamp") or time.time() * 1000), num_str(fr["fundingRate"]),
                            fr.get("fundingTimestamp") or fr.get("nextFundingTimestamp"))

    def fetch_funding_rate_history(self, spec: InstrumentSpec, *, since_ms: int | None) -> list[FundingPoint]:
        ex = self.rest
        ex.load_markets()
        rows = ex.fetch_funding_rate_history(self.ccxt_symbol(spec), since_ms)
        return [FundingPoint(int(r["timestamp"]), num_str(r["fundingRate"])) for r in rows
                if r.get("timestamp") is not None]

    def fetch_open_interest(self, spec: InstrumentSpec) -> OpenInterestPoint:
        ex = self.rest
        ex.load_markets()
        oi = ex.fetch_open_interest(self.ccxt_symbol(spec))
        return self._oi_point(ex, spec, oi)

    def fetch_open_interest_history(self, spec: InstrumentSpec, *, since_ms: int | None,
                                    period: str = "5m") -> list[OpenInterestPoint]:
        ex = self.rest
        ex.load_markets()
        rows = ex.fetch_open_interest_history(self.ccxt_symbol(spec), period, since_ms)
        return [self._oi_point(ex, spec, r) for r in rows if r.get("timestamp") is not None]

    def _oi_point(self, ex, spec: InstrumentSpec, oi: dict) -> OpenInterestPoint:
        base = oi.get("openInterestAmount")
        usd = oi.get("openInterestValue")
        size = self.contract_size(ex, spec)
        base_str = num_str(base)
        if size is not None and base_str is not None and oi.get("baseVolume") is None:
            base_str = num_str(Decimal(base_str) * size)
        return OpenInterestPoint(int(oi.get("timestamp") or time.time() * 1000), base_str, num_str(usd))

    def fetch_liquidations(self, spec: InstrumentSpec, *, since_ms: int | None) -> list[LiquidationPoint]:
        """Public liquidation history, where the exchange offers one over REST (most stream only)."""
        raise ccxt.NotSupported(f"{self.slug}: no public liquidation history")

    def fetch_taker_ratio(self, spec: InstrumentSpec, *, since_ms: int | None,
                          period: str = "5m") -> list[TakerRatioPoint]:
        raise ccxt.NotSupported(f"{self.slug}: no taker buy/sell statistic")

    def liquidated_position(self, liquidation: dict) -> str | None:
        """'long' or 'short' from ccxt's raw side. Default: the side is the liquidation ORDER's side,
        and a SELL order closes a long (Binance ``S``, OKX ``side``)."""
        side = (liquidation.get("side") or "").lower()
        return {"sell": "long", "buy": "short"}.get(side)

    def liquidation_point(self, ex, spec: InstrumentSpec, liq: dict) -> LiquidationPoint | None:
        position = self.liquidated_position(liq)
        ts = liq.get("timestamp")
        price = num_str(liq.get("price"))
        qty = liq.get("contracts")
        if position is None or ts is None or price is None or qty is None:
            return None
        size = self.contract_size(ex, spec)
        qty_str = num_str(Decimal(num_str(qty)) * size) if size is not None else num_str(qty)
        info = liq.get("info") if isinstance(liq.get("info"), dict) else {}
        raw_key = str(info.get("id") or info.get("i") or f"{ts}:{position}:{price}:{qty_str}")
        return LiquidationPoint(raw_key[:64], int(ts), position, price, qty_str)

    # ------------------------------------------------------------------ streams (ccxt.pro)

    async def watch_trades(self, ex, spec: InstrumentSpec) -> list[dict]:
        return await ex.watch_trades(self.ccxt_symbol(spec), params=dict(self.ws_trade_params))

    async def watch_order_book(self, ex, spec: InstrumentSpec, *, limit: int | None = None) -> dict:
        gap = getattr(ex, "book_gaps", {}).pop(self.ccxt_symbol(spec), None)
        if gap is not None:
            raise gap
        return await ex.watch_order_book(self.ccxt_symbol(spec), limit if limit is not None else self.ws_book_limit)

    async def watch_liquidations(self, ex, spec: InstrumentSpec) -> list[dict]:
        return await ex.watch_liquidations(self.ccxt_symbol(spec))


# --------------------------------------------------------------------------- Binance


class _BinanceBase(ExchangeAdapter):
    exchange = "binance"
    exchange_name = "Binance"
    ccxt_id = "binance"
    # Aggregate trades on both REST and WS: Binance pages keylessly by id only for aggTrades, so
    # the stream uses them too and ids line up (no gap, no duplicate). An aggTrade is the fills
    # of one taker order at one price, so taker volume per side is the same as from raw trades.
    ids_contiguous = True
    ws_trade_params = {"name": "aggTrade"}

    def trades_page(self, spec, *, after_id, after_ms, cursor_token=None) -> TradePage:
        ex = self.rest
        ex.load_markets()
        params: dict = {}
        if after_id is not None:
            params["fromId"] = after_id + 1
        elif after_ms is not None:
            params["startTime"] = after_ms
            params["endTime"] = after_ms + 3_600_000 - 1  # Binance caps a time window at one hour
        trades = self.fetch_trades_tolerant(ex, self.ccxt_symbol(spec), limit=self.trades_page_limit, params=params)
        trades.sort(key=lambda t: self.trade_id(t) or 0)
        more = len(trades) >= self.trades_page_limit
        if after_id is None and after_ms is not None and not trades:
            more = after_ms + 3_600_000 < time.time() * 1000
        return TradePage(trades, more=more)


class BinanceSpot(_BinanceBase):
    slug = "binance-spot"
    market = "spot"
    ccxt_market_types = ("spot",)
    defaults = (InstrumentSpec("BTCUSDT", "BTC", "USDT"), InstrumentSpec("ETHUSDT", "ETH", "USDT"))

    def _options(self) -> dict:
        return {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}


class BinanceUsdm(_BinanceBase):
    slug = "binance-usdm"
    market = "usdm"
    kind = "perp"
    ccxt_market_types = ("swap",)
    defaults = (InstrumentSpec("BTCUSDT", "BTC", "USDT"), InstrumentSpec("ETHUSDT", "ETH", "USDT"))
    has_funding = has_open_interest = has_liquidation_stream = has_taker_ratio = True

    def _options(self) -> dict:
        return {"defaultType": "swap", "fetchMarkets": {"types": ["linear"]}}

    def fetch_funding_rate_history(self, spec, *, since_ms) -> list[FundingPoint]:
        # Raw endpoint: ccxt's unified call pages by its own window; one request per beat is enough.
        ex = self.rest
        ex.load_markets()
        request = {"symbol": self.market_of(ex, spec)["id"], "limit": 1000}
        if since_ms is not None:
            request["startTime"] = since_ms
        rows = ex.fapiPublicGetFundingRate(request)
        return [FundingPoint(int(r["fundingTime"]), r["fundingRate"]) for r in rows]

    def fetch_open_interest_history(self, spec, *, since_ms, period="5m") -> list[OpenInterestPoint]:
        ex = self.rest
        ex.load_markets()
        request = {"symbol": self.market_of(ex, spec)["id"], "period": period, "limit": 500}
        if since_ms is not None:
            request["startTime"] = since_ms
        rows = ex.fapiDataGetOpenInterestHist(request)
        return [OpenInterestPoint(int(r["timestamp"]), r.get("sumOpenInterest"), r.get("sumOpenInterestValue"))
                for r in rows]

    def fetch_taker_ratio(self, spec, *, since_ms, period="5m") -> list[TakerRatioPoint]:
        ex = self.rest
        ex.load_markets()
        request = {"symbol": self.market_of(ex, spec)["id"], "period": period, "limit": 500}
        if since_ms is not None:
            request["startTime"] = since_ms
        rows = ex.fapiDataGetTakerlongshortRatio(request)
        return [TakerRatioPoint(int(r["timestamp"]), r["buyVol"], r["sellVol"], r["buySellRatio"]) for r in rows]


# --------------------------------------------------------------------------- Bybit


class _BybitBase(ExchangeAdapter):
    exchange = "bybit"
    exchange_name = "Bybit"
    ccxt_id = "bybit"
    # Bybit's public REST has recent trades only (no paging back), so the cursor is a time and a
    # page that cannot reach it is reported as a gap; linear execIds are UUIDs.
    cursor_kind = "time"
    defaults = (InstrumentSpec("BTCUSDT", "BTC", "USDT"), InstrumentSpec("ETHUSDT", "ETH", "USDT"))
    book_limit = 200
    # The same depth as the REST snapshot (ccxt would subscribe orderbook.50, too shallow for the
    # 1% depth bands on BTC).
    ws_book_limit = 200
    pro_mixin = _BybitGuarded

    def liquidated_position(self, liquidation: dict) -> str | None:
        # allLiquidation "S" is the POSITION side (Buy = a long was liquidated), unlike Binance.
        side = (liquidation.get("side") or "").lower()
        return {"buy": "long", "sell": "short"}.get(side)


class BybitSpot(_BybitBase):
    slug = "bybit-spot"
    market = "spot"
    trades_page_limit = 60

    def _options(self) -> dict:
        return {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}


class BybitLinear(_BybitBase):
    slug = "bybit-linear"
    market = "linear"
    kind = "perp"
    ccxt_market_types = ("swap",)
    has_funding = has_open_interest = has_liquidation_stream = True

    def _options(self) -> dict:
        return {"defaultType": "swap", "defaultSubType": "linear", "fetchMarkets": {"types": ["linear"]}}

    def fetch_funding_rate(self, spec) -> FundingPoint:
        ex = self.rest
        ex.load_markets()
        res = ex.publicGetV5MarketTickers({"category": "linear", "symbol": self.market_of(ex, spec)["id"]})
        row = res["result"]["list"][0]
        return FundingPoint(int(res.get("time") or time.time() * 1000), row["fundingRate"],
                            int(row["nextFundingTime"]) if row.get("nextFundingTime") else None)

    def fetch_open_interest(self, spec) -> OpenInterestPoint:
        ex = self.rest
        ex.load_markets()
        res = ex.publicGetV5MarketTickers({"category": "linear", "symbol": self.market_of(ex, spec)["id"]})
        row = res["result"]["list"][0]
        return OpenInterestPoint(int(res.get("time") or time.time() * 1000), row.get("openInterest"),
                                 row.get("openInterestValue"))


# --------------------------------------------------------------------------- OKX


class _OkxBase(ExchangeAdapter):
    exchange = "okx"
    exchange_name = "OKX"
    ccxt_id = "okx"
    trades_page_limit = 500
    book_limit = 400
    pro_mixin = _OkxGuarded

    async def watch_order_book(self, ex, spec: InstrumentSpec, *, limit: int | None = None) -> dict:
        try:
            return await super().watch_order_book(ex, spec, limit=limit)
        except ccxt.InvalidNonce:
            # ccxt.pro okx marks a channel with a gap for "resync" (unsubscribe, then subscribe again
            # for a fresh snapshot). When the gap came in a burst with no watch waiting, the error is
            # parked and then handed to the resubscribing watch through a future that stays in the
            # client, already failed, and the channel stays listed as subscribed: every later watch
            # fails at once and the subscribe never goes out. Forget both: the next watch subscribes.
            symbol = self.ccxt_symbol(spec)
            for client in ex.clients.values():
                for key in [k for k, f in client.futures.items() if _book_hash(k, symbol) and f.done()]:
                    del client.futures[key]
                for key in [k for k, v in client.subscriptions.items() if _book_hash(k, symbol) and v != "resync"]:
                    del client.subscriptions[key]
            raise


def _book_hash(key: str, symbol: str) -> bool:
    return key.startswith(("books", "bbo-tbt")) and key.endswith(":" + symbol)


class OkxSpot(_OkxBase):
    slug = "okx-spot"
    market = "spot"
    defaults = (InstrumentSpec("BTC-USDT", "BTC", "USDT"), InstrumentSpec("ETH-USDT", "ETH", "USDT"))

    def _options(self) -> dict:
        return {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}


class OkxSwap(_OkxBase):
    slug = "okx-swap"
    market = "swap"
    kind = "perp"
    ccxt_market_types = ("swap",)
    defaults = (InstrumentSpec("BTC-USDT-SWAP", "BTC", "USDT"), InstrumentSpec("ETH-USDT-SWAP", "ETH", "USDT"))
    has_funding = has_open_interest = has_liquidation_stream = True

    def _options(self) -> dict:
        return {"defaultType": "swap", "fetchMarkets": {"types": ["swap"]}}

    def liquidated_position(self, liquidation: dict) -> str | None:
        info = liquidation.get("info") or {}
        details = (info.get("details") or [{}])[0] if isinstance(info, dict) else {}
        pos = (details.get("posSide") or "").lower()
        if pos in ("long", "short"):
            return pos
        return super().liquidated_position(liquidation)


# --------------------------------------------------------------------------- Coinbase, Kraken


class CoinbaseSpot(ExchangeAdapter):
    slug = "coinbase-spot"
    exchange = "coinbase"
    exchange_name = "Coinbase"
    ccxt_id = "coinbase"
    market = "spot"
    cursor_kind = "time"
    defaults = (InstrumentSpec("BTC-USD", "BTC", "USD"), InstrumentSpec("ETH-USD", "ETH", "USD"))
    book_limit = 1000

    def trades_page(self, spec, *, after_id, after_ms, cursor_token=None) -> TradePage:
        ex = self.rest
        ex.load_markets()
        params = {}
        since = None
        if after_ms is not None:
            since = after_ms
            params["until"] = int(time.time() * 1000)
        trades = self.fetch_trades_tolerant(ex, self.ccxt_symbol(spec), since, self.trades_page_limit, params)
        return self._filter_recent(self.taker_side(trades), after_id=None, after_ms=after_ms)

    async def watch_trades(self, ex, spec: InstrumentSpec) -> list[dict]:
        return self.taker_side(await super().watch_trades(ex, spec))

    @staticmethod
    def taker_side(trades: list[dict]) -> list[dict]:
        """Coinbase's public trades (REST market trades and the market_trades channel, like the old
        ``match``) carry the MAKER order's side; ccxt passes it through as ``side``, which everywhere
        else is the taker's. Copies with the side flipped (ccxt keeps the originals in its cache)."""
        flip = {"buy": "sell", "sell": "buy"}
        return [{**t, "side": flip[t["side"]]} if t.get("side") in flip and "error" not in t else t for t in trades]


class KrakenSpot(ExchangeAdapter):
    slug = "kraken-spot"
    exchange = "kraken"
    exchange_name = "Kraken"
    ccxt_id = "kraken"
    market = "spot"
    ids_contiguous = True
    defaults = (InstrumentSpec("XBTUSDT", "BTC", "USDT"), InstrumentSpec("ETHUSDT", "ETH", "USDT"))
    book_limit = 500

    def trades_page(self, spec, *, after_id, after_ms, cursor_token=None) -> TradePage:
        # Kraken pages with its own "last" cursor (ns); ccxt would round `since` to whole seconds.
        ex = self.rest
        ex.load_markets()
        params = {"since": cursor_token} if cursor_token else {}
        since = None if cursor_token else after_ms
        trades = self.fetch_trades_tolerant(ex, self.ccxt_symbol(spec), since, self.trades_page_limit, params)
        body = ex.last_json_response if isinstance(ex.last_json_response, dict) else {}
        token = (body.get("result") or {}).get("last") or cursor_token
        trades.sort(key=lambda t: self.trade_id(t) or 0)
        if after_id is not None:
            trades = [t for t in trades if (self.trade_id(t) or 0) > after_id]
        return TradePage(trades, more=len(trades) >= self.trades_page_limit, cursor_token=token)


# --------------------------------------------------------------------------- Deribit (volatility)


class Deribit(ExchangeAdapter):
    """Deribit options: the DVOL index and at-the-money implied volatility; no trade cursor."""

    slug = "deribit-options"
    exchange = "deribit"
    exchange_name = "Deribit"
    ccxt_id = "deribit"
    market = "option"
    ccxt_market_types = ("option",)
    currencies: ClassVar[tuple[str, ...]] = ("BTC", "ETH")

    def _options(self) -> dict:
        return {"defaultType": "option"}

    def fetch_dvol(self, currency: str, *, since_ms: int | None, resolution: str = "60") -> list[VolIndexPoint]:
        now = int(time.time() * 1000)
        start = since_ms if since_ms is not None else now - 6 * 3_600_000
        res = self.rest.publicGetGetVolatilityIndexData({
            "currency": currency, "start_timestamp": start, "end_timestamp": now, "resolution": resolution,
        })
        # Candles [time, open, high, low, close]: the close is the index at the end of the candle.
        return [VolIndexPoint(int(row[0]), num_str(row[4])) for row in res["result"]["data"]]

    def fetch_option_iv(self, currency: str, *, min_days: float = 1.0) -> OptionIVPoint | None:
        """ATM IV: mean mark IV of the call and put nearest the underlying on the nearest expiry
        at least ``min_days`` away (the front expiry's IV is noise in its last hours)."""
        res = self.rest.publicGetGetBookSummaryByCurrency({"currency": currency, "kind": "option"})
        return option_atm_iv(res["result"], min_days=min_days, now_ms=int(res.get("usOut", 0) // 1000) or None)


_MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}


def _deribit_expiry_ms(code: str) -> int | None:
    """'27DEC24' -> 08:00 UTC that day (Deribit's expiry time)."""
    from datetime import UTC, datetime

    try:
        day, mon, year = int(code[:-5]), _MONTHS[code[-5:-2]], 2000 + int(code[-2:])
    except (KeyError, ValueError):
        return None
    return int(datetime(year, mon, day, 8, tzinfo=UTC).timestamp() * 1000)


def option_atm_iv(rows: list[dict], *, min_days: float, now_ms: int | None = None) -> OptionIVPoint | None:
    now_ms = now_ms or int(time.time() * 1000)
    by_expiry: dict[int, list[tuple[float, str, float, float]]] = {}
    for row in rows:
        name = row.get("instrument_name") or ""
        parts = name.split("-")
        iv, under = row.get("mark_iv"), row.get("underlying_price")
        if len(parts) != 4 or iv is None or under is None:
            continue
        expiry = _deribit_expiry_ms(parts[1])
        try:
            strike = float(parts[2])
        except ValueError:
            continue
        if expiry is None or expiry - now_ms < min_days * 86_400_000:
            continue
        by_expiry.setdefault(expiry, []).append((abs(strike - float(under)), parts[3], float(iv), float(under)))
    if not by_expiry:
        return None
    expiry = min(by_expiry)
    options = sorted(by_expiry[expiry])
    nearest = options[0][0]
    atm = [o for o in options if o[0] == nearest]
    iv = sum(o[2] for o in atm) / len(atm)
    return OptionIVPoint(now_ms, num_str(round(iv, 4)), expiry, num_str(atm[0][3]))


ADAPTERS: dict[str, type[ExchangeAdapter]] = {
    cls.slug: cls for cls in (
        BinanceSpot, BinanceUsdm, BybitSpot, BybitLinear, OkxSpot, OkxSwap, CoinbaseSpot, KrakenSpot, Deribit,
    )
}


@dataclass
class AdapterConfig:
    """Where adapters connect: None means the exchanges' real URLs."""

    api_base: str | None = None
    ws_base: str | None = None
    timeout_ms: int = 10_000
    extra: dict = field(default_factory=dict)


def adapter_for(slug: str, *, api_base: str | None = None, ws_base: str | None = None,
                timeout_ms: int = 10_000) -> ExchangeAdapter:
    try:
        cls = ADAPTERS[slug]
    except KeyError:
        raise ValueError(f"unknown source {slug!r}; known: {', '.join(sorted(ADAPTERS))}") from None
    return cls(api_base=api_base, ws_base=ws_base, timeout_ms=timeout_ms)
