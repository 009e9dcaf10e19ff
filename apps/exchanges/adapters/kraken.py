"""Kraken: spot, paged with its own nanosecond "last" cursor."""

from __future__ import annotations

from apps.exchanges.adapters.base import ExchangeAdapter
from apps.exchanges.adapters.shapes import InstrumentSpec, TradePage


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

