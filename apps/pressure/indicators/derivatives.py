"""Derivatives pressure components from per-bar series (any of them may be missing or NaN).

Inputs are Series indexed by bar start, already one value per bar (e.g. the latest funding rate,
open interest and DVOL at the bar close, liquidation notional summed over the bar). A NaN input
gives a NaN output for that bar: the SPI then renormalises over the other components.

- long_liquidations = long liquidation notional in the bar (quote), as is.
- funding_drop = -(funding_t - funding_{t-1}): a falling funding rate is positive pressure.
- oi_drop = max(0, -(OI_t / OI_{t-1} - 1)) * 1{close_t < close_{t-1}}: the fraction of open
  interest that closed while price fell (longs leaving); 0 when OI rises or price does not fall.
- dvol_rise = DVOL_t - DVOL_{t-1} (volatility points).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

INPUT_COLUMNS = ("long_liquidation_quote", "funding_rate", "open_interest", "dvol")


def long_liquidations(notional: pd.Series) -> pd.Series:
    """Long liquidation notional per bar, unchanged (float)."""
    return notional.astype(float).rename("long_liquidations")


def funding_drop(funding_rate: pd.Series) -> pd.Series:
    """Negative change of the funding rate from the previous bar."""
    return (-funding_rate.astype(float).diff()).rename("funding_drop")


def oi_drop(open_interest: pd.Series, close: pd.Series) -> pd.Series:
    """max(0, -dOI%) when price fell in the bar, 0 when it did not; NaN where an input is missing."""
    oi = open_interest.astype(float)
    prev = oi.shift(1)
    change = oi / prev.where(prev > 0) - 1.0
    dp = close.astype(float).diff()
    out = np.maximum(0.0, -change) * (dp < 0)
    return out.where(change.notna() & dp.notna()).rename("oi_drop")


def dvol_rise(dvol: pd.Series) -> pd.Series:
    """Change of DVOL from the previous bar."""
    return dvol.astype(float).diff().rename("dvol_rise")


def derivatives_components(frame: pd.DataFrame, *, close: pd.Series | None = None) -> pd.DataFrame:
    """The components computable from the columns present in ``frame`` (see INPUT_COLUMNS);
    ``close`` (or a ``close`` column) is needed for oi_drop."""
    out = {}
    if "long_liquidation_quote" in frame:
        out["long_liquidations"] = long_liquidations(frame["long_liquidation_quote"])
    if "funding_rate" in frame:
        out["funding_drop"] = funding_drop(frame["funding_rate"])
    close = frame["close"] if close is None and "close" in frame else close
    if "open_interest" in frame and close is not None:
        out["oi_drop"] = oi_drop(frame["open_interest"], close)
    if "dvol" in frame:
        out["dvol_rise"] = dvol_rise(frame["dvol"])
    return pd.DataFrame(out, index=frame.index)
