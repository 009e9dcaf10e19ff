"""Order book rebuilt from real Binance recordings must match the exchange's own bookTicker.

Pure tests: no Django. The bookTicker stream carries the order-book update id ``u``; whenever
the rebuilt book sits at exactly that id, its top of book must equal the ticker's strings.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from apps.markets.feeds.binance import BookTickerMsg, DepthDiffMsg, DepthSnapshotMsg, iter_file
from apps.markets.orderbook import (
    DEFAULT_BANDS,
    BookSummary,
    BookSynchronizer,
    OrderBook,
    SequenceGap,
)

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance-raw-feed"
FILES = [
    "spot_btcusdt_20240808.gz",
    "spot_btcusdt_20240809.gz",
    "spot_ethusdt_20240808.gz",
    "usdm_btcusdt_20240808.gz",
]


@pytest.fixture(scope="module")
def recordings() -> dict[str, list]:
    """Depth diffs, snapshots and tickers of each file, in receive order (trades not needed)."""
    assert DATA_DIR.is_dir(), f"real Binance recordings missing: {DATA_DIR}"
    wanted = (DepthDiffMsg, DepthSnapshotMsg, BookTickerMsg)
    out = {}
    gc.disable()  # acyclic objects; skipping full GC passes while loading only saves time
    try:
        for name in FILES:
            out[name] = [m for _, m in iter_file(DATA_DIR / name) if isinstance(m, wanted)]
    finally:
        gc.enable()
    return out


@dataclass
class Replay:
    sync: BookSynchronizer
    tops: dict[int, tuple[str, str, str, str]] = field(default_factory=dict)  # book u -> top of book
    tickers: dict[int, tuple[str, str, str, str]] = field(default_factory=dict)  # ticker u -> top
    samples: list[tuple[BookSummary, dict, dict]] = field(default_factory=list)
    summaries: int = 0

    def compare(self) -> tuple[int, list[int]]:
        common = self.tops.keys() & self.tickers.keys()
        return len(common), sorted(u for u in common if self.tops[u] != self.tickers[u])


def replay(msgs: list, sync: BookSynchronizer | None = None, sample_every: int = 700) -> Replay:
    """Feed a recording through a synchronizer, recording the top of book at every update id.

    Bands are off for the per-diff summaries (only the top is compared); banded depth is
    sampled every ``sample_every`` summaries together with a copy of the levels.
    """
    r = Replay(sync or BookSynchronizer(bands=()))
    for m in msgs:
        if isinstance(m, BookTickerMsg):
            r.tickers[m.update_id] = (m.bid_price, m.bid_qty, m.ask_price, m.ask_qty)
        elif isinstance(m, DepthSnapshotMsg):
            r.sync.on_snapshot(m)
        else:
            s = r.sync.on_diff(m)
            if s is None:
                continue
            r.summaries += 1
            r.tops[r.sync.book.last_update_id] = (s.bid_price, s.bid_qty, s.ask_price, s.ask_qty)
            if r.summaries % sample_every == 0:
                book = r.sync.book
                r.samples.append((book.summary(m.event_time_ms), book.bids, book.asks))
    return r


@pytest.fixture(scope="module")
def replays(recordings) -> dict[str, Replay]:
    gc.disable()
    try:
        return _replays(recordings)
    finally:
        gc.enable()


def _replays(recordings) -> dict[str, Replay]:
    out = {
        "spot_btcusdt_20240808.gz": replay(recordings["spot_btcusdt_20240808.gz"]),
        "spot_ethusdt_20240808.gz": replay(recordings["spot_ethusdt_20240808.gz"]),
        "usdm_btcusdt_20240808.gz": replay(recordings["usdm_btcusdt_20240808.gz"]),
    }
    # 0809 has no snapshot: it is the direct continuation, so the 0808 book must chain into it.
    out["spot_btcusdt_20240809.gz"] = replay(
        recordings["spot_btcusdt_20240809.gz"], out["spot_btcusdt_20240808.gz"].sync
    )
    return out


def plain_depth(bids: dict, asks: dict, pct: float) -> tuple[float, float]:
    """Independent reference: a plain loop over every level."""
    mid = (max(bids) + min(asks)) / 2
    bid = 0.0
    for price, qty in bids.items():
        if price >= mid * (1 - pct / 100):
            bid += price * qty
    ask = 0.0
    for price, qty in asks.items():
        if price <= mid * (1 + pct / 100):
            ask += price * qty
    return bid, ask


# --------------------------------------------------------------------------- real files


@pytest.mark.parametrize("name", FILES)
def test_rebuilt_book_never_gaps_and_matches_book_ticker(recordings, replays, name):
    r = replays[name]
    assert r.sync.gaps == 0
    assert r.sync.synced and not r.sync.needs_snapshot
    n_diffs = sum(isinstance(m, DepthDiffMsg) for m in recordings[name])
    assert r.summaries > 0.95 * n_diffs
    matches, mismatches = r.compare()
    assert matches > 50
    assert mismatches == []


def test_sync_counters(replays):
    spot = replays["spot_btcusdt_20240809.gz"].sync  # 0808 + 0809 through one synchronizer
    assert spot.applied == 3_451 + 3_044 - spot.stale_dropped
    assert 0 < spot.stale_dropped < 10  # only diffs received before the snapshot are stale
    fut = replays["usdm_btcusdt_20240808.gz"].sync
    assert fut.applied + fut.stale_dropped == 6_551 and fut.buffered == 0


@pytest.mark.parametrize("name", FILES)
def test_banded_depth_matches_plain_loop(replays, name):
    samples = replays[name].samples
    assert len(samples) >= 4
    for summary, bids, asks in samples:
        assert len(summary.bid_depth) == len(summary.ask_depth) == len(DEFAULT_BANDS)
        for i, pct in enumerate(DEFAULT_BANDS):
            bid, ask = plain_depth(bids, asks, pct)
            assert summary.bid_depth[i] == pytest.approx(bid, rel=1e-9)
            assert summary.ask_depth[i] == pytest.approx(ask, rel=1e-9)
            assert bid > 0 and ask > 0
        assert list(summary.bid_depth) == sorted(summary.bid_depth)
        assert float(summary.bid_price) < float(summary.ask_price)


def test_depth_within_on_final_books(replays):
    for name in FILES:
        book = replays[name].sync.book
        bids, asks = book.bids, book.asks
        for pct in (0.05, 0.1, 0.37, 1.0, 2.0, 5.0):
            assert book.depth_within(pct) == pytest.approx(plain_depth(bids, asks, pct), rel=1e-9)


def test_summary_is_fast_on_a_deep_futures_book(replays):
    book = replays["usdm_btcusdt_20240808.gz"].sync.book
    assert len(book.bids) > 3000
    start = time.perf_counter()
    for _ in range(200):
        book.summary(0)
    # ~20 calls/s per book in production; a generous bound that still catches an O(n log n) slip.
    assert (time.perf_counter() - start) / 200 < 0.005


# --------------------------------------------------------------------------- gaps and resync


def _split(msgs: list):
    snap = next(m for m in msgs if isinstance(m, DepthSnapshotMsg))
    diffs = [m for m in msgs if isinstance(m, DepthDiffMsg)]
    return snap, diffs


@pytest.mark.parametrize("name", ["spot_ethusdt_20240808.gz", "usdm_btcusdt_20240808.gz"])
def test_dropped_diff_is_detected_and_resync_recovers(recordings, replays, name):
    snap, diffs = _split(recordings[name])
    reference = replays[name].sync  # the gap-free replay of the same file

    # Raw book: dropping one diff must raise, leaving the book untouched.
    book = OrderBook()
    book.load_snapshot(snap)
    for d in diffs[:200]:
        book.apply_diff(d)
    before = (book.last_update_id, book.best_bid(), book.best_ask())
    with pytest.raises(SequenceGap) as exc:
        book.apply_diff(diffs[201])  # diffs[200] skipped
    assert exc.value.diff is diffs[201] and exc.value.last_update_id == before[0]
    assert (book.last_update_id, book.best_bid(), book.best_ask()) == before

    # Synchronizer: the same drop flips it to needs_snapshot, then a fresh snapshot heals it.
    sync = BookSynchronizer(bands=())  # no depth bands: keeps this full replay quick
    sync.on_snapshot(snap)
    drop = 1000
    for d in diffs[:drop]:
        sync.on_diff(d)
    assert sync.synced
    assert sync.on_diff(diffs[drop + 1]) is None
    assert (sync.gaps, sync.synced, sync.needs_snapshot) == (1, False, True)
    assert sync.book.best_bid() is None and sync.book.last_update_id is None

    resume = drop + 50
    for d in diffs[drop + 2 : resume]:  # arrive while we wait for the snapshot: buffered
        assert sync.on_diff(d) is None
    assert sync.buffered == resume - drop - 1

    # A "fresh" snapshot taken (by the reference book) somewhere inside the buffered range.
    checkpoint = OrderBook()
    checkpoint.load_snapshot(snap)
    for d in diffs[: drop + 20]:
        checkpoint.apply_diff(d)
    summary = sync.on_snapshot(checkpoint.to_snapshot(time_ms=1))
    assert isinstance(summary, BookSummary)
    assert sync.synced and not sync.needs_snapshot and sync.gaps == 1 and sync.buffered == 0
    assert sync.book.last_update_id == diffs[resume - 1].final_id

    for d in diffs[resume:]:
        sync.on_diff(d)
    assert sync.gaps == 1
    assert sync.book.last_update_id == reference.book.last_update_id
    assert sync.book.bids == reference.book.bids and sync.book.asks == reference.book.asks
    assert sync.book.best_bid() == reference.book.best_bid()
    assert sync.book.best_ask() == reference.book.best_ask()


@pytest.mark.parametrize("name", ["spot_ethusdt_20240808.gz", "usdm_btcusdt_20240808.gz"])
def test_duplicated_diffs_are_dropped_without_error(recordings, replays, name):
    snap, diffs = _split(recordings[name])
    reference = replays[name].sync
    sync = BookSynchronizer(bands=())
    sync.on_snapshot(snap)
    for i, d in enumerate(diffs):
        sync.on_diff(d)
        sync.on_diff(d)  # websocket redelivery
        if i % 100 == 0 and i >= 2:
            assert sync.on_diff(diffs[i - 2]) is None  # an older one, late
    assert sync.gaps == 0
    assert sync.stale_dropped > len(diffs)
    assert sync.book.bids == reference.book.bids and sync.book.asks == reference.book.asks


def test_snapshot_before_first_diff_waits_then_buffers_on_stale_snapshot(recordings):
    snap, diffs = _split(recordings["spot_ethusdt_20240808.gz"])
    sync = BookSynchronizer("ethusdt")
    for d in diffs[:5]:  # diffs before the snapshot are buffered
        assert sync.on_diff(d) is None
    assert sync.buffered == 5 and not sync.synced
    sync.on_snapshot(snap)
    assert sync.synced and sync.buffered == 0
    for d in diffs[5:300]:
        sync.on_diff(d)
    # A snapshot older than the synced book is ignored instead of rewinding it.
    assert sync.on_snapshot(snap) is None
    assert sync.snapshots_ignored == 1 and sync.gaps == 0
    assert sync.book.last_update_id == diffs[299].final_id
    with pytest.raises(ValueError, match="BTCUSDT"):
        sync.on_diff(replace(diffs[300], symbol="BTCUSDT"))


def test_snapshot_too_old_for_buffer_requests_another(recordings):
    snap, diffs = _split(recordings["spot_ethusdt_20240808.gz"])
    sync = BookSynchronizer()
    later = [d for d in diffs if d.first_id > snap.last_update_id + 1][10:20]
    for d in later:
        sync.on_diff(d)
    assert sync.on_snapshot(snap) is None  # snapshot predates the buffered stream
    assert (sync.gaps, sync.synced, sync.needs_snapshot, sync.buffered) == (1, False, True, 10)


# --------------------------------------------------------------------------- sequencing rules


def _spot(first: int, final: int, bids=(), asks=()) -> DepthDiffMsg:
    return DepthDiffMsg("BTCUSDT", 0, first, final, None, tuple(bids), tuple(asks))


def _fut(first: int, final: int, prev: int, bids=(), asks=()) -> DepthDiffMsg:
    return DepthDiffMsg("BTCUSDT", 0, first, final, prev, tuple(bids), tuple(asks))


def _snap(last: int) -> DepthSnapshotMsg:
    bids = (("100.0", "1.0"), ("99.5", "2.0"))
    asks = (("100.5", "1.5"), ("101.0", "3.0"))
    return DepthSnapshotMsg(last, bids, asks, None)


def test_spot_rules():
    book = OrderBook()
    with pytest.raises(RuntimeError):
        book.apply_diff(_spot(1, 2))
    book.load_snapshot(_snap(100))
    assert book.apply_diff(_spot(90, 100)) is False  # u <= lastUpdateId: stale
    with pytest.raises(SequenceGap):
        book.apply_diff(_spot(102, 105))  # first must have U <= lastUpdateId + 1
    assert book.apply_diff(_spot(95, 103, bids=[("100.0", "0")])) is True  # straddles 101
    assert book.best_bid() == ("99.5", "2.0")  # qty 0 removed the level
    assert book.apply_diff(_spot(95, 103)) is False  # duplicate
    with pytest.raises(SequenceGap):
        book.apply_diff(_spot(105, 106))  # must be previous u + 1 = 104
    assert book.apply_diff(_spot(104, 104, asks=[("100.25", "0.5"), ("42.0", "0")])) is True
    assert book.best_ask() == ("100.25", "0.5")
    assert book.last_update_id == 104


def test_spot_first_event_may_start_exactly_at_next_id():
    book = OrderBook()
    book.load_snapshot(_snap(100))
    assert book.apply_diff(_spot(101, 101)) is True


def test_futures_rules():
    book = OrderBook()
    book.load_snapshot(_snap(100))
    assert book.apply_diff(_fut(80, 99, 79)) is False  # u < lastUpdateId: stale
    with pytest.raises(SequenceGap):
        book.apply_diff(_fut(101, 110, 100))  # first must have U <= lastUpdateId
    assert book.apply_diff(_fut(95, 100, 94, bids=[("100.1", "4")])) is True  # u == lastUpdateId is valid
    assert book.best_bid() == ("100.1", "4")
    assert book.apply_diff(_fut(95, 100, 94)) is False  # duplicate
    with pytest.raises(SequenceGap):
        book.apply_diff(_fut(105, 110, 103))  # pu must equal previous u (100)
    assert book.apply_diff(_fut(104, 110, 100)) is True  # futures ids need not be contiguous


def test_summary_none_when_side_empty_or_crossed():
    book = OrderBook()
    assert book.summary(0) is None and book.mid() is None and book.depth_within(1.0) == (0.0, 0.0)
    book.load_snapshot(DepthSnapshotMsg(1, (("100", "1"),), (), None))
    assert book.summary(0) is None and book.best_ask() is None
    book.load_snapshot(_snap(1))
    s = book.summary(7, bands=(0.3, 1.0))
    # mid 100.25: 0.3% keeps only the touch, 1% adds the second level on each side.
    assert s == BookSummary(7, "100.0", "1.0", "100.5", "1.5", (100.0, 299.0), (150.75, 453.75))
    book.apply_diff(_spot(2, 2, bids=[("100.5", "1")]))  # locked book
    assert book.summary(0) is None
    book.apply_diff(_spot(3, 3, bids=[("100.7", "1")]))  # crossed book
    assert book.summary(0) is None


def test_to_snapshot_round_trips():
    book = OrderBook("BTCUSDT")
    book.load_snapshot(_snap(5))
    book.apply_diff(_spot(6, 6, bids=[("99.75", "0.125")], asks=[("101.0", "0")]))
    copy = OrderBook()
    copy.load_snapshot(book.to_snapshot())
    assert copy.bids == book.bids and copy.asks == book.asks and copy.last_update_id == 6
    assert book.to_snapshot().bids[0] == ("100.0", "1.0")  # best first, exact strings


def test_a_level_exactly_on_a_band_edge_is_inside_the_band():
    """bid 2499.99, ask 2500.01: the 0.5% edge is exactly 2512.50, which float puts at 2512.4999999999995."""
    book = OrderBook("ETHUSDT")
    book.load_snapshot(DepthSnapshotMsg(1, (("2487.50", "3"), ("2487.49", "5"), ("2499.99", "1")),
                                        (("2500.01", "1"), ("2512.50", "2"), ("2512.51", "4")), None, "ETHUSDT"))
    (bid,), (ask,) = book.depth_bands((0.5,))
    assert ask == 2500.01 + 2 * 2512.50  # the level on the edge counts, the one past it does not
    assert bid == 2499.99 + 3 * 2487.50  # 2500 * 0.995 = 2487.5 exactly: in; 2487.49: out
