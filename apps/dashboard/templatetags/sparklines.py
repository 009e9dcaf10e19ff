"""The overview's index sparklines as inline SVG: a line needs no charting library, so the first page loads none.

The geometry is the one static/js/overview.js redraws live: x in minutes across the hour ending at the newest
point (viewBox 60 wide), y = 100 - index (the index runs 0-100), a gap wherever a minute has no index.
"""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.html import format_html

register = template.Library()

WINDOW_MINUTES = 60


def sparkline_path(*, x: list[str], y: list[float | None]) -> str:
    """The SVG path of a sparkline: one "M" per run of consecutive minutes, "L" within it."""
    if not x:
        return ""
    times = [datetime.fromisoformat(t).timestamp() / 60 for t in x]
    start = times[-1] - WINDOW_MINUTES
    parts, previous = [], None
    for minute, value in zip(times, y, strict=True):
        if value is None or minute < start:
            previous = None
            continue
        joined = previous is not None and minute - previous <= 1
        parts.append(f"{'L' if joined else 'M'}{minute - start:.2f} {100 - value:.1f}")
        previous = minute
    return " ".join(parts)


@register.simple_tag
def sparkline(spark: dict, *, label: str, figure_id: str):
    return format_html(
        '<svg class="sparkline" viewBox="0 0 {} 100" preserveAspectRatio="none" role="img" aria-label="{}" '
        'data-figure-id="{}"><path d="{}" vector-effect="non-scaling-stroke"/></svg>',
        WINDOW_MINUTES, label, figure_id, sparkline_path(x=spark["x"], y=spark["y"]))
