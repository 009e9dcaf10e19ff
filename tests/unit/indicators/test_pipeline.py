"""The whole pipeline on a real recording: incremental equals batch, determinism, mirror symmetry."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from apps.pressure.indicators import SpiStream, detect_episodes, explain
from apps.pressure.indicators.pipeline import BookSamples, Quotes, SpiConfig, Trades, compute_components, compute_spi
from apps.pressure.indicators.pipeline import spi_from_components as spi_of

from .feeds import quotes_of, trades_of

NAME = "usdm_btcusdt_20240808.gz"
# Short windows so the lookback kept by the stream is tight (31 bars: the book window + 1).
CONFIG = SpiConfig(interval_ms=1_000, window=60, min_periods=20, flow_window=20, book_window=30, large_window=1_000,
                   large_min_trades=100, vpin_bucket_volume=5.0, vpin_buckets=20, netflow_window=25,
                   netflow_min_periods=10)


def l1_book(q: Quotes) -> BookSamples:
    return BookSamples(q.time_ms, q.bid_px, q.ask_px, q.bid_px * q.bid_qty, q.ask_px * q.ask_qty, ("l1",))


def external_for(trades: Trades) -> pd.DataFrame:
    """Synthetic derivatives inputs per bar (the recording has none), some of them missing."""
    start = trades.time_ms[0] - trades.time_ms[0] % 1_000
    idx = pd.Index(np.arange(start, trades.time_ms[-1] + 1, 1_000), name="bucket_ms")
    rng = np.random.default_rng(5)
    liq = np.where(rng.random(len(idx)) < 0.1, rng.exponential(1e5, len(idx)), 0.0)
    funding = np.round(1e-4 + rng.normal(0, 1e-5, len(idx)).cumsum(), 8)
    funding[::7] = np.nan
    oi = 8e4 + rng.normal(0, 50, len(idx)).cumsum()
    netflow = rng.normal(0, 20, len(idx))
    return pd.DataFrame({"long_liquidation_quote": liq, "funding_rate": funding, "open_interest": oi,
                         "netflow": netflow}, index=idx)


def window(stream, lo: int, hi: int):
    a, b = np.searchsorted(stream.time_ms, [lo, hi], side="left")
    fields = [getattr(stream, f) for f in stream.__dataclass_fields__ if f != "bands"]
    if isinstance(stream, BookSamples):
        return BookSamples(*(f[a:b] for f in fields), bands=stream.bands)
    return type(stream)(*(f[a:b] for f in fields))


@pytest.fixture(scope="module")
def real():
    t, q = trades_of(NAME), quotes_of(NAME)
    return t, q, l1_book(q), external_for(t)


def test_incremental_one_second_batches_equal_the_batch_pipeline(real):
    t, q, book, ext = real
    batch = spi_of(compute_components(trades=t, quotes=q, book=book, external=ext, config=CONFIG), config=CONFIG)
    stream = SpiStream(CONFIG)
    first = int(min(t.time_ms[0], q.time_ms[0]))
    cut = first - first % 1_000 + 120_000
    rows = [stream.update(trades=window(t, 0, cut), quotes=window(q, 0, cut), book=window(book, 0, cut),
                          external=ext.loc[:cut - 1]).to_frame()]
    end = int(max(t.time_ms[-1], q.time_ms[-1]))
    for lo in range(cut, end + 1, 1_000):  # one live batch per second of exchange time
        rows.append(stream.update(trades=window(t, lo, lo + 1_000), quotes=window(q, lo, lo + 1_000),
                                  book=window(book, lo, lo + 1_000), external=ext.loc[lo:lo + 999]).to_frame())
    live = pd.concat(rows)
    live = live[~live.index.duplicated(keep="last")]  # a bar's final figures are its last update
    want = batch.to_frame()
    assert list(live.index) == list(want.index) and len(want) > 300
    numeric = [c for c in want.columns if c not in ("regime", "missing")]
    np.testing.assert_allclose(live[numeric].to_numpy(float), want[numeric].to_numpy(float), rtol=1e-9, atol=1e-9)
    assert live["regime"].tolist() == want["regime"].tolist()
    assert live["missing"].tolist() == want["missing"].tolist()
    for name in ("long_liquidations", "oi_drop", "funding_drop", "netflow_z", "vpin", "kyles_lambda", "bid_withdrawal"):
        assert want[f"z_{name}"].notna().sum() > 100, name
    assert len(stream.stats) == max(CONFIG.flow_window, CONFIG.book_window + 1, CONFIG.netflow_window + 1) + 1


def test_stream_refuses_old_events_and_ignores_empty_batches(real):
    t = real[0]
    stream = SpiStream(CONFIG)
    stream.update(trades=window(t, 0, int(t.time_ms[5_000])))
    assert len(stream.update(trades=Trades.empty())) == 0
    with pytest.raises(ValueError, match="older than the open bar"):
        stream.update(trades=window(t, 0, int(t.time_ms[10])))
    moved = stream.update(now_ms=stream.open_bar + 3_000)  # clock only: empty bars, carried values
    assert len(moved) == 4 and moved.value["taker_sell_ratio"].iloc[1:].isna().all()


def test_pipeline_is_deterministic(real):
    t, q, book, ext = real
    a = compute_spi(trades=t, quotes=q, book=book, external=ext, config=CONFIG).to_frame()
    b = compute_spi(trades=t, quotes=q, book=book, external=ext, config=CONFIG).to_frame()
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_mirrored_market_mirrors_the_directional_spi(real):
    t, q, book, _ = real
    weights = {"taker_sell_ratio": 1.0, "cvd_slope": 1.0, "trade_count_imbalance": 0.5, "ofi": 1.0, "imbalance": 1.0}
    config = SpiConfig(**{**CONFIG.__dict__, "weights": weights})
    a = compute_spi(trades=t, quotes=q, book=book, config=config)
    mt = Trades(t.time_ms, t.price, t.qty, ~t.taker_sell)
    mq = Quotes(q.time_ms, -q.ask_px, q.ask_qty, -q.bid_px, q.bid_qty)  # negated prices, sides swapped
    mb = BookSamples(book.time_ms, book.bid, book.ask, book.ask_depth, book.bid_depth, book.bands)
    b = compute_spi(trades=mt, quotes=mq, book=mb, config=config)
    assert a.spi.notna().sum() > 250
    np.testing.assert_allclose(b.spi - 50, -(a.spi - 50), atol=1e-6)


def test_missing_families_are_reported_and_the_rest_still_scores(real):
    t, *_ = real
    result = compute_spi(trades=t, config=CONFIG)
    assert result.missing_mask["ofi"].all() and result.missing_mask["imbalance"].all()
    scored = result.spi.dropna()
    assert len(scored) > 250
    assert all("ofi" in m and "long_liquidations" in m for m in result.missing)
    np.testing.assert_allclose(result.weight.loc[scored.index].sum(axis=1), 1.0)
    text = explain(result, scored.idxmax())
    assert text.startswith(f"SPI {scored.max():.0f} (")
    for e in detect_episodes(result.spi, contribution=result.contribution):
        assert e.source in ("profit-taking", "event-shock", "mixed")  # no derivatives data, no deleveraging


def test_stream_state_survives_pickling(real):
    t, q, book, _ = real
    cut = int(t.time_ms[8_000])
    stream = SpiStream(CONFIG)
    stream.update(trades=window(t, 0, cut), quotes=window(q, 0, cut), book=window(book, 0, cut))
    copy = pickle.loads(pickle.dumps(stream))
    batch = {"trades": window(t, cut, cut + 1_000), "quotes": window(q, cut, cut + 1_000),
             "book": window(book, cut, cut + 1_000)}
    pd.testing.assert_frame_equal(copy.update(**batch).to_frame(), stream.update(**batch).to_frame(), check_exact=True)
