"""Exchange adapters: one module per exchange on a common base (:mod:`.base`), the plain data they
return (:mod:`.shapes`), and the pinned patches to ccxt internals (:mod:`.ccxt_patches`)."""

from apps.exchanges.adapters.base import ExchangeAdapter
from apps.exchanges.adapters.binance import BinanceSpot, BinanceUsdm
from apps.exchanges.adapters.bybit import BybitLinear, BybitSpot
from apps.exchanges.adapters.coinbase import CoinbaseSpot
from apps.exchanges.adapters.deribit import Deribit, _deribit_expiry_ms, option_atm_iv
from apps.exchanges.adapters.kraken import KrakenSpot
from apps.exchanges.adapters.okx import OkxSpot, OkxSwap
from apps.exchanges.adapters.shapes import (
    FundingPoint,
    InstrumentSpec,
    LiquidationPoint,
    OpenInterestPoint,
    OptionIVPoint,
    TakerRatioPoint,
    TradePage,
    VolIndexPoint,
    num_str,
    synthetic_id,
)

__all__ = [
    "ADAPTERS",
    "BinanceSpot",
    "BinanceUsdm",
    "BybitLinear",
    "BybitSpot",
    "CoinbaseSpot",
    "Deribit",
    "ExchangeAdapter",
    "FundingPoint",
    "InstrumentSpec",
    "KrakenSpot",
    "LiquidationPoint",
    "OkxSpot",
    "OkxSwap",
    "OpenInterestPoint",
    "OptionIVPoint",
    "TakerRatioPoint",
    "TradePage",
    "VolIndexPoint",
    "_deribit_expiry_ms",
    "adapter_for",
    "num_str",
    "option_atm_iv",
    "synthetic_id",
]

ADAPTERS: dict[str, type[ExchangeAdapter]] = {
    cls.slug: cls for cls in (
        BinanceSpot, BinanceUsdm, BybitSpot, BybitLinear, OkxSpot, OkxSwap, CoinbaseSpot, KrakenSpot, Deribit,
    )
}


def adapter_for(slug: str, *, api_base: str | None = None, ws_base: str | None = None,
                timeout_ms: int = 10_000) -> ExchangeAdapter:
    try:
        cls = ADAPTERS[slug]
    except KeyError:
        raise ValueError(f"unknown source {slug!r}; known: {', '.join(sorted(ADAPTERS))}") from None
    return cls(api_base=api_base, ws_base=ws_base, timeout_ms=timeout_ms)
