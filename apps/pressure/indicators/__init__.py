"""Selling Pressure Index (SPI): the pure math, numpy/pandas only, no Django.

One module per family, each documenting the exact definition of its metrics:

- orderflow: taker sell ratio, delta and CVD slope, trade-count imbalance, large-trade sell share
- orderbook: band imbalance, bid-depth withdrawal, spread widening
- ofi: Order Flow Imbalance (Cont, Kukanov & Stoikov) and its price-impact regression
- vpin: VPIN (Easley, López de Prado & O'Hara) with exact taker sides
- kyle: Kyle's lambda
- derivatives: long liquidations, funding drop, open-interest drop, DVOL rise
- flows: exchange netflow z-score, whale ratio, stablecoin netflow
- crossvenue: volume-weighted aggregation, spot-vs-perp divergence and lead-lag
- index: robust z-scores, weights (DEFAULT_WEIGHTS), the SPI, regimes, explanations
- episodes: episode detection with hysteresis and source labels
- pipeline: events -> per-bar statistics -> components -> SPI (batch)
- incremental: the same for live batches, keeping only the trailing state

Per-bar outputs are indexed by bar start in ms (``bucket_ms``, UTC exchange time) on a
contiguous grid: empty bars are rows.
"""

from .episodes import EPISODE_GROUPS, Episode, detect_episodes
from .incremental import SpiStream
from .index import DEFAULT_WEIGHTS, LABELS, SIGNS, SpiResult, explain, regime, robust_z, spi
from .pipeline import BookSamples, Quotes, SpiConfig, Trades, compute_components, compute_spi, spi_from_components

__all__ = [
    "DEFAULT_WEIGHTS",
    "EPISODE_GROUPS",
    "LABELS",
    "SIGNS",
    "BookSamples",
    "Episode",
    "Quotes",
    "SpiConfig",
    "SpiResult",
    "SpiStream",
    "Trades",
    "compute_components",
    "compute_spi",
    "detect_episodes",
    "explain",
    "regime",
    "robust_z",
    "spi",
    "spi_from_components",
]
