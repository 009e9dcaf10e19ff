"""OFI (Cont, Kukanov & Stoikov) on real best bid/ask updates, against a loop of the paper's formula."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.pressure.indicators import ofi

from .feeds import book_tickers, quotes_of

INTERVAL = 1_000


def ofi_by_hand(rows) -> dict[int, list]:
    """Per bar [sum of e_n, last mid]; the first update has no predecessor (e = 0)."""
    bars: dict[int, list] = {}
    prev = None
    for t, pb, qb, pa, qa in rows:
        e = 0.0
        if prev is not None:
            ppb, pqb, ppa, pqa = prev
            e = ((qb if pb >= ppb else 0.0) - (pqb if pb <= ppb else 0.0)
                 - (qa if pa <= ppa else 0.0) + (pqa if pa >= ppa else 0.0))
        bar = bars.setdefault(t - t % INTERVAL, [0.0, None])
        bar[0] += e
        bar[1] = (pb + pa) / 2
        prev = (pb, qb, pa, qa)
    return bars


@pytest.mark.parametrize("name", ["usdm_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz"])
def test_ofi_per_bar_matches_the_paper_formula_on_real_quotes(name):
    q = quotes_of(name)
    got = ofi.ofi_bars(q.time_ms, q.bid_px, q.bid_qty, q.ask_px, q.ask_qty, interval_ms=INTERVAL)
    want = ofi_by_hand(book_tickers(name))
    assert len(got) > 250 and got["ofi"].abs().sum() > 0
    mid = math.nan
    for bucket, row in got.iterrows():
        total, last_mid = want.get(bucket, [0.0, None])
        mid = last_mid if last_mid is not None else mid
        assert row.ofi == pytest.approx(total, abs=1e-9)
        assert row.mid == pytest.approx(mid, nan_ok=True)


def test_price_impact_regression_matches_ols_by_hand():
    name = "usdm_btcusdt_20240808.gz"
    q = quotes_of(name)
    bars = ofi.ofi_bars(q.time_ms, q.bid_px, q.bid_qty, q.ask_px, q.ask_qty, interval_ms=INTERVAL)
    window, min_periods = 20, 5
    fit = ofi.price_impact(bars["mid"], bars["ofi"], window=window, min_periods=min_periods)
    x = bars["ofi"].tolist()
    mids = bars["mid"].tolist()
    y = [math.nan] + [b - a for a, b in itertools.pairwise(mids)]
    checked = 0
    for i in range(len(x)):
        pairs = [(x[k], y[k]) for k in range(max(0, i - window + 1), i + 1) if not math.isnan(y[k])]
        if len(pairs) < min_periods:
            assert math.isnan(fit["beta"].iloc[i])
            continue
        mx = sum(p[0] for p in pairs) / len(pairs)
        my = sum(p[1] for p in pairs) / len(pairs)
        sxx = sum((p[0] - mx) ** 2 for p in pairs)
        syy = sum((p[1] - my) ** 2 for p in pairs)
        sxy = sum((p[0] - mx) * (p[1] - my) for p in pairs)
        assert fit["beta"].iloc[i] == pytest.approx(sxy / sxx, rel=1e-6, abs=1e-12)
        if syy > 0:
            assert fit["r2"].iloc[i] == pytest.approx(sxy * sxy / (sxx * syy), rel=1e-6, abs=1e-9)
        checked += 1
    assert checked > 300
    assert fit["beta"].median() > 0, "more OFI should go with a rising mid (CKS)"


def test_mirrored_book_flips_ofi_exactly_on_real_quotes():
    q = quotes_of("usdm_btcusdt_20240808.gz")
    e = ofi.ofi_events(q.bid_px, q.bid_qty, q.ask_px, q.ask_qty)
    # Mirror: negate prices and swap the sides, so the bid becomes the ask and vice versa.
    m = ofi.ofi_events(-q.ask_px, q.ask_qty, -q.bid_px, q.bid_qty)
    np.testing.assert_allclose(m, -e, rtol=0, atol=1e-12)  # same terms, summed in another order
    assert np.abs(e).sum() > 0


quote_paths = st.lists(
    st.tuples(st.integers(990, 1_000), st.integers(1, 50), st.integers(1, 10), st.integers(1, 50)),
    min_size=1, max_size=100,
)


@settings(max_examples=80, deadline=None)
@given(quote_paths)
def test_mirror_and_batches_on_random_paths(rows):
    pb = np.array([r[0] for r in rows], dtype=float)
    qb = np.array([r[1] for r in rows], dtype=float)
    pa = pb + np.array([r[2] for r in rows])
    qa = np.array([r[3] for r in rows], dtype=float)
    e = ofi.ofi_events(pb, qb, pa, qa)
    np.testing.assert_array_equal(ofi.ofi_events(2000 - pa, qa, 2000 - pb, qb), -e)
    cut = len(rows) // 2
    if cut:
        tail = ofi.ofi_events(pb[cut:], qb[cut:], pa[cut:], qa[cut:],
                              previous=(pb[cut - 1], qb[cut - 1], pa[cut - 1], qa[cut - 1]))
        np.testing.assert_array_equal(tail, e[cut:])
    assert e[0] == 0


def test_constant_ofi_window_has_no_slope():
    mid = np.arange(10.0)
    flat = ofi.price_impact(pd.Series(mid), pd.Series(np.ones(10)), window=5)
    assert flat["beta"].isna().all()
