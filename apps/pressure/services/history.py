"""The index, episodes, forecast and track record of history that arrived in bulk (klines, trade archives).

The live path computes these bar by bar as bars become final; an import brings months of final bars at once,
so they are computed here in chunks, walk-forward all the same (every value still reads only the bars before it).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from apps.markets.models import Instrument
from apps.pressure import bars as barmath
from apps.pressure.models import PressureBar
from apps.pressure.services.forecast import drop_risk_history_refresh, track_record_refresh
from apps.pressure.services.index import episodes_refresh, spi_refresh
from pressureweb.lib.times import dt_to_ms

CHUNK_BARS = 50_000


def history_index_refresh(*, instrument: Instrument, interval: str, start_ms: int, end_ms: int,
                          progress: Callable[[int], None] | None = None) -> int:
    """The index (and calibrated regimes) of the final bars starting in [start, end), then their episodes.

    Returns the bars given an index; `progress` is told the bars done after each chunk."""
    size = barmath.INTERVAL_MS[interval]
    done = 0
    lo = start_ms - start_ms % size
    while lo < end_ms:
        hi = min(end_ms, lo + CHUNK_BARS * size)
        done += len(spi_refresh(instrument=instrument, interval=interval, start_ms=lo, end_ms=hi - 1))
        if progress is not None:
            progress(done)
        lo = hi
    episodes_refresh(instrument=instrument, interval=interval, start_ms=start_ms, end_ms=end_ms)
    return done


def history_evaluate(*, instrument: Instrument, interval: str) -> dict:
    """Walk-forward drop-risk predictions for every final bar, then the stored track record per horizon."""
    scored = drop_risk_history_refresh(instrument=instrument, interval=interval)
    records = {}
    size = barmath.INTERVAL_MS[interval]
    for horizon in settings.TRACK_RECORD_HORIZONS:
        if (horizon * 60_000) % size:
            continue  # a horizon must be whole bars
        record = track_record_refresh(instrument=instrument, interval=interval, horizon_minutes=horizon)
        if record is not None:
            records[horizon] = record
    return {"scored": scored, "records": records}


def history_span(*, instrument: Instrument, interval: str) -> tuple[int, int] | None:
    """(first, last) bar start in ms of an instrument's final bars of one interval."""
    bars = PressureBar.objects.filter(instrument=instrument, interval=interval, final=True)
    first = bars.order_by("bucket_start").values_list("bucket_start", flat=True).first()
    if first is None:
        return None
    last = bars.order_by("-bucket_start").values_list("bucket_start", flat=True).first()
    return dt_to_ms(first), dt_to_ms(last)
