"""The Selling Pressure Index's pure math (numpy/pandas only, no Django): the one engine.

One module per family, each documenting the exact definition of its metrics:

- orderflow: taker sell ratio, delta and CVD slope, trade-count imbalance, large-trade sell share
- orderbook: band imbalance, bid-depth withdrawal, spread widening
- ofi: Order Flow Imbalance (Cont, Kukanov & Stoikov) from book samples
- kyle: Kyle's lambda
- derivatives: long liquidations, funding drop, open-interest drop, DVOL rise
- crossvenue: spot-vs-perp divergence
- index: robust z-scores, weights (DEFAULT_WEIGHTS), the SPI, calibrated regimes, explanations
- episodes: episode detection with hysteresis and source labels

apps.pressure.spi turns stored bars of any interval into the components and the index with these;
the VPIN component there is a bar proxy (|buy - sell| / volume over recent bars), not Easley et al.'s
volume buckets. Per-bar outputs are indexed by bar start in ms (``bucket_ms``, UTC exchange time) on a
contiguous grid: empty bars are rows.
"""
