import csv

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from django_ratelimit.decorators import ratelimit

from apps.api.openapi import openapi_schema
from apps.api.params import BadRequest, bar_query_parse
from apps.pressure.selectors import API_FIELDS, bars_for_range


def _instrument_info(instrument) -> dict:
    return {
        "exchange": instrument.exchange.slug, "market": instrument.market, "symbol": instrument.symbol,
        "base": instrument.base, "quote": instrument.quote, "kind": instrument.kind,
        "source": "replay" if instrument.is_replay else "live",
    }


def _api_rate(group, request) -> str:
    return settings.API_RATE


def _client_key(group, request) -> str:
    # Behind a unix socket or some proxies there is no REMOTE_ADDR; such clients share one bucket.
    return request.META.get("REMOTE_ADDR") or "unknown"


def rate_limited(request, exception):
    return JsonResponse({"error": f"rate limit exceeded ({settings.API_RATE} per client); slow down"}, status=429,
                        headers={"Retry-After": "60"})


# Read-only endpoints: no CSRF state to protect, and other methods get a plain 405.
@csrf_exempt
@require_GET
def openapi(request):
    return JsonResponse(openapi_schema())


@csrf_exempt
@require_GET
@ratelimit(key=_client_key, rate=_api_rate, block=True)
def bars(request):
    try:
        query = bar_query_parse(request.GET)
    except BadRequest as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    rows = bars_for_range(instrument=query.instrument, interval=query.interval, start=query.start, end=query.end)
    if query.format == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="{query.instrument.exchange.slug}_{query.instrument.market}_'
            f'{query.instrument.symbol}_{query.interval}.csv"'
        )
        writer = csv.DictWriter(response, fieldnames=API_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return response
    return JsonResponse({
        "instrument": _instrument_info(query.instrument), "interval": query.interval,
        "start": query.start.isoformat().replace("+00:00", "Z"), "end": query.end.isoformat().replace("+00:00", "Z"),
        "bars": [{k: row[k] for k in API_FIELDS} for row in rows],
    })
