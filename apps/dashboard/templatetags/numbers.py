"""Number formatting for pages, from one place: percentages of fractions, prices at an instrument's precision."""

from __future__ import annotations

import math

from django import template

register = template.Library()


@register.filter
def percent(value, decimals: int = 1) -> str:
    """A fraction as a percentage: 0.0623 -> "6.2%"; empty for None, NaN or no number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    if math.isnan(number):
        return ""
    return f"{100 * number:.{int(decimals)}f}%"
