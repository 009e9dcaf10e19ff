"""The exchange-flow components of the Selling Pressure Index (registered in FlowsConfig.ready)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from apps.flows.selectors import flow_components_hourly
from apps.markets.models import Instrument
from pressureweb.lib.times import ms_to_dt


def flow_components(*, instrument: Instrument, interval: str, interval_ms: int, start_ms: int,
                    end_ms: int) -> pd.DataFrame | None:
    """netflow_z and whale_ratio of the instrument's base asset, hourly, applied to the bars of each hour."""
    flows = flow_components_hourly(asset=instrument.base, start=ms_to_dt(start_ms), end=ms_to_dt(end_ms))
    if flows.empty:
        return None
    grid = np.arange(start_ms - start_ms % interval_ms, end_ms, interval_ms)
    hour_bars = max(1, 3_600_000 // interval_ms)
    return flows.reindex(flows.index.union(grid)).ffill(limit=hour_bars).reindex(grid)
