"""{% derivatives_panel instrument %}: the derivatives panel for an instrument page."""

from django import template

from apps.derivatives.selectors import derivatives_latest

register = template.Library()


@register.inclusion_tag("derivatives/_panel.html")
def derivatives_panel(instrument, interval: str = "5m", minutes: int = 360):
    latest = derivatives_latest(instrument=instrument)
    funding = latest["funding"]
    return {
        "instrument": instrument, "latest": latest, "interval": interval, "minutes": minutes,
        "funding_pct": funding.rate * 100 if funding else None,
    }
