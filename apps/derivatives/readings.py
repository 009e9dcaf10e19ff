"""The readings the derivatives store takes, whoever reads them (the exchange adapters, recorded samples)."""

from __future__ import annotations

from dataclasses import dataclass


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
class MarkPricePoint:
    time_ms: int
    mark_price: str
    index_price: str | None = None
