"""All components and the SPI from raw events, in two stages that the incremental path reuses.

1. :func:`bar_stats`: additive per-bar sufficient statistics from the events (volumes, counts,
   OFI sums, book sample sums) plus "last value" columns (close, mid, VPIN) and the external
   per-bar inputs. Trade-level state that crosses bar boundaries (recent trade sizes for the
   large-trade threshold, the partly filled VPIN bucket, the last quote for OFI) is handed over
   in a :class:`Carry`, so a batch gives the same statistics as the whole stream.
2. :func:`components_from_stats`: the component values per bar; each row depends only on the
   previous :func:`lookback` rows of statistics.

Then :func:`apps.pressure.indicators.index.spi` turns components into the SPI.

Streams: a family (trades, quotes, book) that is not given is missing everywhere. Bars before a
stream's first event are NaN (no data yet); bars after it without events are empty (zero flow).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from . import derivatives, flows, index, kyle, ofi, orderbook, orderflow, vpin
from ._bars import bar_grid, empty_grid

LAST_COLUMNS = frozenset({"close", "mid", "vpin"})  # carried values; every other stats column is a sum
QUOTE_COLUMNS = ("ofi", "updates", "mid")


@dataclass(frozen=True)
class Trades:
    """Trades sorted by exchange time: time_ms (int64), price, qty (base), taker_sell (bool)."""

    time_ms: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    taker_sell: np.ndarray

    def __post_init__(self):
        _coerce(self, time_ms=np.int64, price=np.float64, qty=np.float64, taker_sell=bool)

    def __len__(self) -> int:
        return len(self.time_ms)

    @classmethod
    def empty(cls) -> Trades:
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, bool))


@dataclass(frozen=True)
class Quotes:
    """Best bid/ask updates sorted by time: time_ms, bid_px, bid_qty, ask_px, ask_qty."""

    time_ms: np.ndarray
    bid_px: np.ndarray
    bid_qty: np.ndarray
    ask_px: np.ndarray
    ask_qty: np.ndarray

    def __post_init__(self):
        _coerce(self, time_ms=np.int64, bid_px=np.float64, bid_qty=np.float64, ask_px=np.float64,
                ask_qty=np.float64)

    def __len__(self) -> int:
        return len(self.time_ms)

    @classmethod
    def empty(cls) -> Quotes:
        return cls(np.zeros(0, np.int64), *(np.zeros(0),) * 4)


@dataclass(frozen=True)
class BookSamples:
    """Book samples sorted by time: best bid/ask and depth per band (quote currency), shape (n, bands)."""

    time_ms: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_depth: np.ndarray
    ask_depth: np.ndarray
    bands: tuple[str, ...] = ()

    def __post_init__(self):
        _coerce(self, time_ms=np.int64, bid=np.float64, ask=np.float64)
        n = len(self.time_ms)
        if len(self.bid) != n or len(self.ask) != n:
            raise ValueError("BookSamples.bid and .ask need one row per sample")
        for name in ("bid_depth", "ask_depth"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            arr = arr[:, None] if arr.ndim == 1 else arr
            if len(arr) != n:
                raise ValueError(f"BookSamples.{name} has {len(arr)} rows, expected {n}")
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "bands", orderbook.band_names(self.bid_depth, tuple(self.bands) or None))

    def __len__(self) -> int:
        return len(self.time_ms)

    @classmethod
    def empty(cls, bands: tuple[str, ...]) -> BookSamples:
        z = np.zeros((0, len(bands)))
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), z, z, bands)


def _coerce(obj, **dtypes) -> None:
    n = None
    for name, dtype in dtypes.items():
        arr = np.asarray(getattr(obj, name), dtype=dtype)
        if n is not None and len(arr) != n:
            raise ValueError(f"{type(obj).__name__}.{name} has {len(arr)} rows, expected {n}")
        n = len(arr)
        object.__setattr__(obj, name, arr)


@dataclass(frozen=True)
class SpiConfig:
    """Every tunable of the pipeline. Windows count bars unless named otherwise."""

    interval_ms: int = 60_000
    window: int = index.DEFAULT_WINDOW  # robust z window
    min_periods: int = index.DEFAULT_MIN_PERIODS
    clip: float = index.DEFAULT_CLIP
    thresholds: tuple[float, float, float] = index.REGIME_THRESHOLDS
    weights: Mapping[str, float] = field(default_factory=lambda: dict(index.DEFAULT_WEIGHTS))
    flow_window: int = 30  # CVD slope, Kyle's lambda, OFI price impact
    flow_min_periods: int = 10
    book_window: int = 60  # trailing medians of spread and bid depth
    book_min_periods: int = 10
    large_quantile: float = 0.95
    large_window: int = 5_000  # trades
    large_min_trades: int = 500
    # None: the input's mean volume per bar, i.e. about one bucket per bar. Live streams should
    # fix it per instrument so bucket boundaries never move.
    vpin_bucket_volume: float | None = None
    vpin_buckets: int = vpin.DEFAULT_N_BUCKETS
    netflow_window: int = 240
    netflow_min_periods: int = 30
    imbalance_band: str | None = None  # default: the tightest (first) band


def lookback(config: SpiConfig) -> int:
    """Rows of statistics before a bar that its components can depend on."""
    return max(config.flow_window, config.book_window + 1, config.netflow_window + 1, 2)


@dataclass(frozen=True)
class Carry:
    """State handed from one batch of events to the next (see the module docstring)."""

    started: frozenset[str] = frozenset()
    trade_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vpin_bucket_volume: float | None = None
    vpin_volume: float = 0.0
    vpin_buy: float = 0.0
    vpin_recent: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vpin_last: float = np.nan
    last_close: float = np.nan
    last_quote: tuple[float, float, float, float] | None = None
    last_mid: float = np.nan
    bands: tuple[str, ...] = ()


def _event_span(*streams) -> tuple[int, int] | None:
    times = [s.time_ms for s in streams if s is not None and len(s)]
    if not times:
        return None
    return min(int(t[0]) for t in times), max(int(t[-1]) for t in times)


def bar_stats(
    *,
    trades: Trades | None = None,
    quotes: Quotes | None = None,
    book: BookSamples | None = None,
    external: pd.DataFrame | None = None,
    config: SpiConfig,
    grid: pd.Index | None = None,
    carry: Carry | None = None,
) -> tuple[pd.DataFrame, Carry]:
    """Per-bar statistics on ``grid`` (default: the span of all events) and the carry after them."""
    carry = carry or Carry()
    iv = config.interval_ms
    if grid is None:
        span = _event_span(trades, quotes, book)
        if external is not None and len(external):
            lo, hi = int(external.index.min()), int(external.index.max())
            span = (lo, hi) if span is None else (min(span[0], lo), max(span[1], hi))
        grid = empty_grid() if span is None else bar_grid(*span, interval_ms=iv)
    cols: dict[str, np.ndarray] = {}
    started = set(carry.started)
    updates: dict = {}

    def before_first(name: str, time_ms: np.ndarray) -> np.ndarray:
        """Rows before the stream's first event, when the stream had not started before this batch."""
        if name in carry.started or not len(grid):
            return np.zeros(len(grid), bool)
        if not len(time_ms):
            return np.ones(len(grid), bool)
        started.add(name)
        return grid.to_numpy() < int(time_ms[0]) - int(time_ms[0]) % iv

    if trades is not None:
        t = trades
        flow = orderflow.trade_flow_bars(t.time_ms, t.price, t.qty, t.taker_sell, interval_ms=iv, index=grid,
                                         last_close=carry.last_close)
        large = orderflow.large_trade_bars(t.time_ms, t.qty, t.taker_sell, interval_ms=iv, index=grid,
                                           quantile=config.large_quantile, window=config.large_window,
                                           min_trades=config.large_min_trades, history=carry.trade_sizes)
        bucket_volume = carry.vpin_bucket_volume or config.vpin_bucket_volume
        if bucket_volume is None and len(t):
            bucket_volume = float(t.qty.sum()) / max(len(grid), 1)
        buckets = vpin.volume_buckets(t.time_ms, t.qty, t.taker_sell, bucket_volume=bucket_volume or 0.0,
                                      carry_volume=carry.vpin_volume, carry_buy=carry.vpin_buy)
        vp = vpin.rolling_vpin(buckets.imbalance, n_buckets=config.vpin_buckets, history=carry.vpin_recent)
        vp_bars = vpin.vpin_to_bars(buckets.end_ms, vp, interval_ms=iv, index=grid, last=carry.vpin_last)
        skip = before_first("trades", t.time_ms)
        for name in ("buy", "sell", "buy_trades", "sell_trades", "close"):
            cols[name] = np.where(skip, np.nan, flow[name].to_numpy())
        cols["large_buy"] = np.where(skip, np.nan, large["large_buy"].to_numpy())
        cols["large_sell"] = np.where(skip, np.nan, large["large_sell"].to_numpy())
        cols["vpin"] = vp_bars.to_numpy()
        recent = np.concatenate((carry.vpin_recent, buckets.imbalance))
        recent = recent[max(len(recent) - (config.vpin_buckets - 1), 0):]
        updates.update(
            trade_sizes=np.concatenate((carry.trade_sizes, t.qty))[-config.large_window:],
            vpin_bucket_volume=bucket_volume or None,
            vpin_volume=buckets.carry_volume,
            vpin_buy=buckets.carry_buy,
            vpin_recent=recent,
            vpin_last=float(vp[-1]) if len(vp) else carry.vpin_last,
            last_close=float(t.price[-1]) if len(t) else carry.last_close,
        )
    if quotes is not None:
        q = quotes
        bars = ofi.ofi_bars(q.time_ms, q.bid_px, q.bid_qty, q.ask_px, q.ask_qty, interval_ms=iv, index=grid,
                            previous=carry.last_quote, last_mid=carry.last_mid)
        skip = before_first("quotes", q.time_ms)
        for name in QUOTE_COLUMNS:
            cols[name] = np.where(skip, np.nan, bars[name].to_numpy())
        if len(q):
            updates.update(last_quote=(float(q.bid_px[-1]), float(q.bid_qty[-1]), float(q.ask_px[-1]),
                                       float(q.ask_qty[-1])),
                           last_mid=float((q.bid_px[-1] + q.ask_px[-1]) / 2.0))
    if book is not None:
        b = book
        sums = orderbook.book_sample_sums(b.time_ms, b.bid, b.ask, b.bid_depth, b.ask_depth, interval_ms=iv,
                                          bands=b.bands, index=grid)
        skip = before_first("book", b.time_ms)
        for name in sums.columns:
            cols[name] = np.where(skip, np.nan, sums[name].to_numpy())
        updates["bands"] = b.bands
    stats = pd.DataFrame(cols, index=grid)
    if external is not None:
        ext = external.reindex(grid).astype(float)
        for name in ext.columns:
            stats[name] = ext[name].to_numpy()
    return stats, replace(carry, started=frozenset(started), **updates)


def components_from_stats(stats: pd.DataFrame, *, config: SpiConfig, bands: tuple[str, ...] = ()) -> pd.DataFrame:
    """Component values per bar (columns named as in index.SIGNS, plus ``close``)."""
    out: dict[str, pd.Series] = {}
    fw, fmin = config.flow_window, config.flow_min_periods
    if "buy" in stats:
        d = orderflow.delta(stats)
        out["taker_sell_ratio"] = orderflow.taker_sell_ratio(stats)
        out["delta"] = d
        out["cvd_slope"] = orderflow.cvd_slope(d, window=fw)
        out["trade_count_imbalance"] = orderflow.trade_count_imbalance(stats)
        out["large_trade_sell_share"] = orderflow.large_trade_sell_share(stats)
        out["vpin"] = stats["vpin"]
        out["kyles_lambda"] = kyle.kyles_lambda(stats["close"], d, window=fw, min_periods=fmin)
    if "ofi" in stats:
        out["ofi"] = stats["ofi"]
        out["ofi_beta"] = ofi.price_impact(stats["mid"], stats["ofi"], window=fw, min_periods=fmin)["beta"]
    if "samples" in stats and bands:
        means = orderbook.book_means(stats, bands)
        out["imbalance"] = means[f"imbalance_{config.imbalance_band or bands[0]}"]
        depth = means[[f"bid_depth_{b}" for b in bands]]
        withdrawn = orderbook.bid_withdrawal(depth, window=config.book_window, min_periods=config.book_min_periods)
        out["bid_withdrawal"] = withdrawn.mean(axis=1, skipna=True)
        out["spread_widening"] = orderbook.spread_widening(means["spread_bps"], window=config.book_window,
                                                           min_periods=config.book_min_periods)
    close = stats["close"] if "close" in stats else None
    out.update(derivatives.derivatives_components(stats, close=close).items())
    out.update(flows.flow_components(stats, window=config.netflow_window,
                                     min_periods=config.netflow_min_periods).items())
    for name in stats.columns:
        if name in index.SIGNS and name not in out:
            out[name] = stats[name]  # precomputed components (e.g. spot_perp_divergence) pass through
    if close is not None:
        out["close"] = close
    frame = pd.DataFrame(out, index=stats.index)
    return frame.astype(np.float64)


def compute_components(
    *,
    trades: Trades | None = None,
    quotes: Quotes | None = None,
    book: BookSamples | None = None,
    external: pd.DataFrame | None = None,
    config: SpiConfig | None = None,
) -> pd.DataFrame:
    """Raw component values per bar for whatever inputs are given (batch path).

    ``external`` is a frame indexed by bar start with any of: long_liquidation_quote,
    funding_rate, open_interest, dvol, netflow, whale_ratio, stablecoin_netflow, and any
    precomputed component named in index.SIGNS (e.g. spot_perp_divergence).
    """
    config = config or SpiConfig()
    stats, carry = bar_stats(trades=trades, quotes=quotes, book=book, external=external, config=config)
    return components_from_stats(stats, config=config, bands=carry.bands)


def spi_from_components(components: pd.DataFrame, *, config: SpiConfig | None = None,
                        last: int | None = None) -> index.SpiResult:
    """index.spi with the configuration's weights, window, clip and thresholds."""
    config = config or SpiConfig()
    return index.spi(components, weights=config.weights, window=config.window, min_periods=config.min_periods,
                     clip=config.clip, thresholds=config.thresholds, last=last)


def compute_spi(
    *,
    trades: Trades | None = None,
    quotes: Quotes | None = None,
    book: BookSamples | None = None,
    external: pd.DataFrame | None = None,
    config: SpiConfig | None = None,
) -> index.SpiResult:
    """All components and the SPI per bar in one call (batch path)."""
    config = config or SpiConfig()
    components = compute_components(trades=trades, quotes=quotes, book=book, external=external, config=config)
    return spi_from_components(components, config=config)


__all__ = [
    "BookSamples",
    "Carry",
    "Quotes",
    "SpiConfig",
    "Trades",
    "bar_stats",
    "components_from_stats",
    "compute_components",
    "compute_spi",
    "lookback",
    "spi_from_components",
]
