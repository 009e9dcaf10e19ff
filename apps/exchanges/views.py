from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache

from apps.derivatives.charts import derivatives_figure
from apps.derivatives.selectors import derivatives_bars, derivatives_readings, derivatives_sample
from apps.exchanges.selectors import sources_configured, sources_overview, status_thresholds
from apps.markets.models import Instrument
from apps.pressure.models import INTERVALS


@never_cache
def sources(request):
    lagging_s, stale_s = status_thresholds()
    return render(request, "exchanges/sources.html", {
        "rows": sources_overview(), "configured": sources_configured(),
        "collecting": settings.EXCHANGES_ENABLED, "lagging_s": int(lagging_s), "stale_s": int(stale_s),
    })


@never_cache
def derivatives_series(request, instrument_id: int):
    """The derivatives panel's figure as JSON (read by static/js/derivatives.js)."""
    instrument = get_object_or_404(Instrument.objects.with_exchange(), pk=instrument_id)
    interval = request.GET.get("interval", "5m")
    if interval not in INTERVALS:
        return HttpResponseBadRequest(f"interval must be one of {', '.join(INTERVALS)}")
    try:
        minutes = min(max(int(request.GET.get("minutes", "360")), 1), 7 * 24 * 60)
    except ValueError:
        return HttpResponseBadRequest("minutes must be an integer")
    sample = derivatives_sample(instrument=instrument) if request.GET.get("sample") == "1" else None
    if sample is not None:
        # The recorded sample's readings at their own times, not buckets of a range that ends now.
        rows = derivatives_readings(instrument=instrument, start_ms=sample.start_ms, end_ms=sample.end_ms)
    else:
        end = datetime.now(tz=UTC)
        rows = derivatives_bars(instrument=instrument, interval=interval, start=end - timedelta(minutes=minutes),
                                end=end)
    theme = "light" if request.COOKIES.get("theme") == "light" else "dark"
    figure = derivatives_figure(rows, base=instrument.base, quote=instrument.quote, theme=theme)
    body = f'{{"interval": "{interval}", "rows": {len(rows)}, "figure": {figure}}}'
    return HttpResponse(body, content_type="application/json")
