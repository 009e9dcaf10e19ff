"""An instrument's bars as the ready script element its page embeds (pressureweb/page_payloads.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils.safestring import SafeString

from apps.markets.models import Instrument
from apps.pressure.selectors import bar_rows_query, bars_version, range_key
from pressureweb.page_payloads import ScriptElement, script_element
from pressureweb.payload_cache import cached_while_rebuilt


@dataclass(frozen=True)
class BarsScript:
    """A range of bars as a ready <script type="application/json"> element, for a page to embed as is."""

    element: ScriptElement
    count: int
    last_bucket_start: str | None

    @property
    def script(self) -> SafeString:
        return self.element.script


def bars_script(*, element_id: str, instrument: Instrument, interval: str, start: datetime, end: datetime,
                max_points: int | None = None, version: int | None = None) -> BarsScript:
    """bars_for_range's rows serialised once per (range bucket, bars version) and kept so in the cache.

    The same JSON as {{ rows|json_script:element_id }} (compact separators), without building,
    pickling or encoding the rows again on every page view: render the page with
    render_with_payloads(..., payloads=[bars.element]). ``version``: the instrument's bars_version
    when the caller has read it already (None: read it here).
    """
    version = bars_version(instrument.pk) if version is None else version
    lo, hi = range_key(interval, start, end)
    key = None if version is None else f"barsjson:{instrument.pk}:{interval}:{lo}:{hi}:{max_points}:{element_id}"

    def build() -> BarsScript:
        rows = bar_rows_query(instrument=instrument, interval=interval, start=start, end=end, max_points=max_points)
        return BarsScript(script_element(rows, element_id), len(rows), rows[-1]["bucket_start"] if rows else None)

    return cached_while_rebuilt(key, version, build)
