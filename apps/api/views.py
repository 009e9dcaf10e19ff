import csv

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from django_ratelimit.decorators import ratelimit

from apps.api.openapi import openapi_schema
from apps.api.params import BadRequest, bar_query_parse, parse_time
from apps.pressure.indicators.index import DEFAULT_WEIGHTS
from apps.pressure.selectors import (
    API_FIELDS,
    PRESSURE_FIELDS,
    bars_for_range,
    episode_serialize,
    episodes_list,
    instrument_lookup,
    pressure_for_range,
)


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


def _csv_response(name: str, fieldnames, rows) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    writer = csv.DictWriter(response, fieldnames=fieldnames, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return response


@csrf_exempt
@require_GET
@ratelimit(key=_client_key, rate=_api_rate, block=True)
def pressure(request):
    try:
        query = bar_query_parse(request.GET)
        if query.interval != "1m":
            raise BadRequest("the Selling Pressure Index is computed on 1m bars: use interval=1m")
    except BadRequest as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    rows = pressure_for_range(instrument=query.instrument, start=query.start, end=query.end)
    if query.format == "csv":
        names = list(DEFAULT_WEIGHTS)
        flat = []
        for row in rows:
            item = {"bucket_start": row["bucket_start"], "spi": row["spi"], "regime": row["regime"],
                    "missing": ";".join(row["missing"])}
            for name in names:
                for part in ("value", "z", "contribution"):
                    item[f"{name}_{part}"] = row["components"].get(name, {}).get(part)
            flat.append(item)
        fields = ["bucket_start", "spi", "regime", *(f"{n}_{p}" for n in names for p in ("value", "z", "contribution")),
                  "missing"]
        return _csv_response(f"{query.instrument.symbol}_pressure", fields, flat)
    return JsonResponse({"instrument": _instrument_info(query.instrument), "interval": "1m",
                         "fields": list(PRESSURE_FIELDS), "pressure": rows})


@csrf_exempt
@require_GET
@ratelimit(key=_client_key, rate=_api_rate, block=True)
def episodes(request):
    params = request.GET
    try:
        instrument = None
        if any(params.get(k) for k in ("exchange", "market", "symbol")):
            if not all(params.get(k) for k in ("exchange", "market", "symbol")):
                raise BadRequest("give exchange, market and symbol together, or none of them")
            instrument = instrument_lookup(exchange=params["exchange"], market=params["market"],
                                           symbol=params["symbol"])
            if instrument is None:
                raise BadRequest("unknown instrument")
        start, end = parse_time(params.get("start"), "start"), parse_time(params.get("end"), "end")
        if (start is None) != (end is None):
            raise BadRequest("give start and end together")
        if start and start >= end:
            raise BadRequest("start must be before end")
        fmt = params.get("format", "json")
        if fmt not in ("json", "csv"):
            raise BadRequest(f"format must be json or csv, got {fmt!r}")
    except BadRequest as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    rows = [episode_serialize(e) for e in episodes_list(instrument=instrument, start=start, end=end)[:1000]]
    if fmt == "csv":
        fields = ["exchange", "market", "symbol", "start", "peak_time", "peak_spi", "end", "bars", "drawdown", "source"]
        return _csv_response("episodes", fields, rows)
    return JsonResponse({"episodes": rows})
