"""Index components from outside an instrument's own bars, supplied by the apps that own that data.

The index knows no other app: flows (exchange netflow and whale ratio) and derivatives (liquidations,
funding, open interest, DVOL) register a provider in their AppConfig.ready(). A provider answers, for one
instrument and a range of bars of one interval, a frame of raw component values indexed by bar start (ms) on
that interval's grid, or None when it has nothing for that instrument.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from apps.markets.models import Instrument

Provider = Callable[..., pd.DataFrame | None]  # (*, instrument, interval, interval_ms, start_ms, end_ms)
_providers: dict[str, Provider] = {}


def component_provider_register(*, name: str, provider: Provider) -> None:
    _providers[name] = provider


def components_external(*, instrument: Instrument, interval: str, interval_ms: int, start_ms: int,
                        end_ms: int) -> list[pd.DataFrame]:
    """What every registered provider has for the instrument (each frame on the interval's grid)."""
    frames = []
    for provider in _providers.values():
        found = provider(instrument=instrument, interval=interval, interval_ms=interval_ms, start_ms=start_ms,
                         end_ms=end_ms)
        if found is not None and not found.empty:
            frames.append(found)
    return frames
