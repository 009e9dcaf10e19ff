import csv

from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from apps.api.params import BadRequest, bar_query_parse
from apps.pressure.selectors import API_FIELDS, bars_for_range


def _instrument_info(instrument) -> dict:
    return {
        "exchange": instrument.exchange.slug, "market": instrument.market, "symbol": instrument.symbol,
        "base": instrument.base, "quote": instrument.quote, "kind": instrument.kind,
        "source": "replay" if instrument.is_replay else "live",
    }


@require_GET
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
