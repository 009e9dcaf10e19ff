"""Binance: spot and USD-M futures (aggregate trades, funding, open interest, taker statistics)."""

from __future__ import annotations

from apps.exchanges.adapters.base import ExchangeAdapter
from apps.exchanges.adapters.shapes import (
    FundingPoint,
    InstrumentSpec,
    OpenInterestPoint,
    TakerRatioPoint,
    TradePage,
)
from pressureweb.lib.times import now_ms


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
            more = after_ms + 3_600_000 < now_ms()
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

    def _raw_request(self, spec, *, since_ms, **params):
        """The exchange with its markets loaded, and a raw endpoint's request for the spec's market from since_ms."""
        ex = self.rest
        ex.load_markets()
        request = {"symbol": self.market_of(ex, spec)["id"], **params}
        if since_ms is not None:
            request["startTime"] = since_ms
        return ex, request

    def fetch_funding_rate_history(self, spec, *, since_ms) -> list[FundingPoint]:
        # Raw endpoint: ccxt's unified call pages by its own window; one request per beat is enough.
        ex, request = self._raw_request(spec, since_ms=since_ms, limit=1000)
        rows = ex.fapiPublicGetFundingRate(request)
        return [FundingPoint(int(r["fundingTime"]), r["fundingRate"]) for r in rows]

    def fetch_open_interest_history(self, spec, *, since_ms, period="5m") -> list[OpenInterestPoint]:
        ex, request = self._raw_request(spec, since_ms=since_ms, period=period, limit=500)
        rows = ex.fapiDataGetOpenInterestHist(request)
        return [OpenInterestPoint(int(r["timestamp"]), r.get("sumOpenInterest"), r.get("sumOpenInterestValue"))
                for r in rows]

    def fetch_taker_ratio(self, spec, *, since_ms, period="5m") -> list[TakerRatioPoint]:
        ex, request = self._raw_request(spec, since_ms=since_ms, period=period, limit=500)
        rows = ex.fapiDataGetTakerlongshortRatio(request)
        return [TakerRatioPoint(int(r["timestamp"]), r["buyVol"], r["sellVol"], r["buySellRatio"]) for r in rows]
