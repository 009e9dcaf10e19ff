"""Alert values as the pages show them (units, percentages, regime names), from the metric registry."""

from __future__ import annotations

from django import template

from apps.alerts.metrics import METRICS, format_value, spi_components_text
from apps.alerts.models import duration_text

register = template.Library()


@register.filter
def metric_text(value, metric_key: str) -> str:
    """A stored value of this metric, shown: 0.723 of taker_sell_ratio -> "72.3%"."""
    metric = METRICS.get(metric_key)
    if metric is None:
        return "" if value is None else str(value)
    return format_value(value, metric)


@register.filter
def components_text(components) -> list[tuple[str, float]]:
    """The index components of an event as (label, contribution), largest first."""
    return spi_components_text(components)


@register.filter
def metric_noun(metric_key: str) -> str:
    """The metric's name inside a sentence: "taker sell ratio", never the code name."""
    metric = METRICS.get(metric_key)
    return metric.noun if metric else metric_key


@register.filter
def duration(value) -> str:
    """A cooldown as people say it: 4 h, 90 min -> 1 h 30 min."""
    return duration_text(value) if value is not None else ""
