"""Instrument names in templates, from apps.markets.naming (one definition for pages and emails)."""

from __future__ import annotations

from django import template

from apps.markets import naming

register = template.Library()


@register.filter
def full_name(instrument) -> str:
    return naming.instrument_full_name(instrument) if instrument else ""


@register.filter
def short_name(instrument) -> str:
    return naming.instrument_short_name(instrument) if instrument else ""


@register.filter
def exchange_name(instrument) -> str:
    """The exchange without a REPLAY mark, for pages that show the REPLAY badge beside it."""
    return naming.instrument_exchange_name(instrument, mark_replay=False) if instrument else ""


@register.inclusion_tag("dashboard/_instrument_name.html")
def instrument_name(instrument, link: bool = True):
    """The full name as HTML: symbol, market type and exchange, a REPLAY badge for recorded data."""
    return {"instrument": instrument, "link": link, "symbol": instrument.symbol,
            "kind": naming.instrument_kind_word(instrument),
            "exchange": naming.instrument_exchange_name(instrument, mark_replay=False)}
