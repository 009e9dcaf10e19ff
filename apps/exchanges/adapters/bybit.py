"""Bybit: spot and linear perpetuals (recent trades only, so a time cursor)."""

from __future__ import annotations

from apps.exchanges.adapters.base import ExchangeAdapter
from apps.exchanges.adapters.ccxt_patches import BybitGuarded
from apps.exchanges.adapters.shapes import FundingPoint, InstrumentSpec, OpenInterestPoint
from pressureweb.lib.times import now_ms


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
    pro_mixin = BybitGuarded

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
        return FundingPoint(int(res.get("time") or now_ms()), row["fundingRate"],
                            int(row["nextFundingTime"]) if row.get("nextFundingTime") else None)

    def fetch_open_interest(self, spec) -> OpenInterestPoint:
        ex = self.rest
        ex.load_markets()
        res = ex.publicGetV5MarketTickers({"category": "linear", "symbol": self.market_of(ex, spec)["id"]})
        row = res["result"]["list"][0]
        return OpenInterestPoint(int(res.get("time") or now_ms()), row.get("openInterest"),
                                 row.get("openInterestValue"))

