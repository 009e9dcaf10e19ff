"""Derivatives components against loops, with missing data (the netflow z-score: tests/unit/flows)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from apps.pressure.indicators import derivatives

NAN = math.nan


def test_derivative_components_follow_their_definitions():
    frame = pd.DataFrame({
        "long_liquidation_quote": [0.0, 1e6, NAN, 5e4, 0.0],
        "funding_rate": [1e-4, 1e-4, 5e-5, NAN, -2e-5],
        "open_interest": [100.0, 90.0, 95.0, 80.0, 80.0],
        "dvol": [50.0, 52.5, NAN, 60.0, 58.0],
        "close": [10.0, 9.0, 9.5, 9.0, 8.0],
    }, index=pd.Index([0, 60_000, 120_000, 180_000, 240_000], name="bucket_ms"))
    got = derivatives.derivatives_components(frame)
    assert got["long_liquidations"].tolist()[:2] == [0.0, 1e6] and math.isnan(got["long_liquidations"].iloc[2])
    want_funding = [NAN, 0.0, 5e-5, NAN, NAN]
    want_oi = [NAN, 0.1, 0.0, 1 - 80 / 95, 0.0]  # bar 2: OI rose; bar 4: OI flat while price fell
    want_dvol = [NAN, 2.5, NAN, NAN, -2.0]
    for col, want in (("funding_drop", want_funding), ("oi_drop", want_oi), ("dvol_rise", want_dvol)):
        for g, w in zip(got[col].tolist(), want, strict=True):
            assert g == pytest.approx(w, nan_ok=True, abs=1e-15), col


def test_oi_drop_needs_a_falling_price():
    oi = pd.Series([100.0, 90.0, 80.0])
    up = derivatives.oi_drop(oi, pd.Series([10.0, 11.0, 12.0]))
    assert up.tolist()[1:] == [0.0, 0.0]
    missing = derivatives.oi_drop(oi, pd.Series([10.0, NAN, 9.0]))
    assert missing.isna().all()
