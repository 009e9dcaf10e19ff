"""One interface to every exchange we read, built on ccxt (REST) and ccxt.pro (WebSocket).

ccxt does the wire work: signing-free public requests, market metadata, parsing into its
unified structures, and (in ccxt.pro) order-book maintenance with each exchange's sequence
rules. What ccxt lacks is written in the exchange's own module, against the exchange's raw
endpoints reached through ccxt's implicit API methods (``fapiPublicGetFundingRate``,
``publicGetGetVolatilityIndexData`` ...), so every request still goes through ccxt's rate
limiter, error mapping and base URL; what needs ccxt's internals is in :mod:`.ccxt_patches`.

``api_base``/``ws_base`` point every URL of an exchange at another server, keeping the original
host as the first path segment (``https://fapi.binance.com/fapi/v1`` becomes
``http://127.0.0.1:PORT/fapi.binance.com/fapi/v1``): the offline test server routes on it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit

import ccxt
import ccxt.pro

from apps.exchanges.adapters.ccxt_patches import Guarded, tracked
from apps.exchanges.adapters.shapes import (
    FundingPoint,
    InstrumentSpec,
    LiquidationPoint,
    OpenInterestPoint,
    TakerRatioPoint,
    TradePage,
    num_str,
    synthetic_id,
)
from pressureweb.lib.times import now_ms


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
    pro_mixin: ClassVar[type] = Guarded
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
            ex = tracked(getattr(ccxt, self.ccxt_id))(self._config())
            self._redirect(ex)
            self._rest = ex
        return self._rest

    def pro(self):
        """A new ccxt.pro instance (WebSocket + async REST) for the caller's event loop; close it when done."""
        config = self._config()
        # ccxt.pro keeps only the last `tradesLimit` trades between two watch calls (default 1000);
        # a burst bigger than that while the loop is busy would silently drop trades.
        config["options"] = {**config["options"], "tradesLimit": 100_000, "liquidationsLimit": 10_000}
        ex = tracked(getattr(ccxt.pro, self.ccxt_id), self.pro_mixin)(config)
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
        return FundingPoint(int(fr.get("timestamp") or now_ms()), num_str(fr["fundingRate"]),
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
        return OpenInterestPoint(int(oi.get("timestamp") or now_ms()), base_str, num_str(usd))

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

