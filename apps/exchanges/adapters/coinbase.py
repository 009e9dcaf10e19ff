"""Coinbase: spot (its public trades carry the maker's side; flipped to the taker's here)."""

from __future__ import annotations

from apps.exchanges.adapters.base import ExchangeAdapter
from apps.exchanges.adapters.shapes import InstrumentSpec, TradePage
from pressureweb.lib.times import now_ms


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
            params["until"] = now_ms()
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

