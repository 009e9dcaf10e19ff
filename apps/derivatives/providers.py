"""The derivatives components of the Selling Pressure Index (registered in DerivativesConfig.ready)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from apps.derivatives.models import FundingRate, Liquidation, OpenInterest, VolIndex
from apps.derivatives.selectors import derivatives_bars
from apps.markets.models import Instrument
from apps.pressure.indicators import derivatives
from pressureweb.lib.times import dt_to_ms, ms_to_dt


def derivatives_components(*, instrument: Instrument, interval: str, interval_ms: int, start_ms: int,
                           end_ms: int) -> pd.DataFrame | None:
    """Long liquidations, funding drop, open-interest drop with falling price and DVOL rise, per bar."""
    has_own = any(m.objects.filter(instrument=instrument).exists() for m in (FundingRate, OpenInterest, Liquidation))
    if not has_own and not VolIndex.objects.filter(currency=instrument.base.upper()).exists():
        return None
    rows = derivatives_bars(instrument=instrument, interval=interval, start=ms_to_dt(start_ms), end=ms_to_dt(end_ms))
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    frame.index = [dt_to_ms(datetime.fromisoformat(r.replace("Z", "+00:00"))) for r in frame.pop("bucket_start")]
    inputs = pd.DataFrame({
        "long_liquidation_quote": frame["liq_long_usd"] if has_own else np.nan,
        "funding_rate": frame["funding_rate"], "open_interest": frame["oi_base"], "dvol": frame["dvol"],
        "close": frame["close"],
    }, index=frame.index).astype(np.float64)
    return derivatives.derivatives_components(inputs.dropna(axis=1, how="all"))
