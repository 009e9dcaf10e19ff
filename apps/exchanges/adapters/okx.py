"""OKX: spot and USDT swaps (book checksums verified in ccxt_patches.OkxGuarded)."""

from __future__ import annotations

import ccxt

from apps.exchanges.adapters.base import ExchangeAdapter
from apps.exchanges.adapters.ccxt_patches import OkxGuarded, okx_book_forget
from apps.exchanges.adapters.shapes import InstrumentSpec


class _OkxBase(ExchangeAdapter):
    exchange = "okx"
    exchange_name = "OKX"
    ccxt_id = "okx"
    trades_page_limit = 500
    book_limit = 400
    pro_mixin = OkxGuarded

    async def watch_order_book(self, ex, spec: InstrumentSpec, *, limit: int | None = None) -> dict:
        try:
            return await super().watch_order_book(ex, spec, limit=limit)
        except ccxt.InvalidNonce:
            okx_book_forget(ex, self.ccxt_symbol(spec))  # so the next watch subscribes afresh
            raise


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

