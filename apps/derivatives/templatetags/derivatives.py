"""{% derivatives_panel instrument %}: the derivatives panel for an instrument page."""

from django import template
from django.conf import settings

from apps.derivatives.selectors import derivatives_latest, derivatives_sample, derivatives_samples

register = template.Library()


@register.inclusion_tag("derivatives/_panel.html")
def derivatives_panel(instrument, interval: str = "5m", minutes: int = 360):
    latest = derivatives_latest(instrument=instrument)
    funding = latest["funding"]
    perp = instrument.kind == "perp"
    sample = derivatives_sample(instrument=instrument) if perp else None
    newest = max((r.time_ms for r in (funding, latest["oi"]) if r is not None), default=None)
    if sample is not None and newest is not None and newest > sample.end_ms:
        sample = None  # live readings arrived after the sample: the panel is live
    others = [s for s in derivatives_samples()
              if s.instrument_id != instrument.pk and s.instrument.base == instrument.base]
    return {
        "instrument": instrument, "latest": latest, "interval": interval, "minutes": minutes, "perp": perp,
        "funding_pct": funding.rate * 100 if funding else None, "sample": sample, "other_samples": others,
        "exchanges_enabled": settings.EXCHANGES_ENABLED,
        "chart": sample is not None or (latest["has_any"] if perp else bool(latest["dvol"] or latest["atm_iv"])),
    }
