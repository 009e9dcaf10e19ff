"""Number formatting for pages, from one place: percentages of fractions, prices at an instrument's precision."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

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


@register.filter
def price(value, instrument) -> str:
    """A price at the instrument's precision, with thousands separators: 61,660.00 beside 61,633.20."""
    if value is None:
        return "\u2013"
    decimals = min(int(getattr(instrument, "price_decimals", 2) or 0), 10)
    return f"{Decimal(value):,.{decimals}f}"


@register.filter
def signed(value, decimals: int = 4) -> str:
    """A change with its sign: +12.3456, -0.5000; a dash for None."""
    if value is None:
        return "\u2013"
    return f"{Decimal(value):+,.{int(decimals)}f}".replace("-", "\u2212")


@register.filter
def utc(value, seconds: bool = False) -> str:
    """A time as the pages write it: "2026-12-04 05:47 UTC" (with seconds when asked), from a datetime or ISO text;
    "never" for None."""
    if value in (None, ""):
        return "never"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")
