"""GET /api/v1/flows: hourly exchange flows as JSON or CSV.

``?chain=btc&asset=BTC&exchange=binance&interval=1h&start=ISO&end=ISO&format=json|csv``

- ``chain``: ``btc`` (default) or ``eth``; ``asset``: ``BTC`` on btc, ``USDT`` (default) or ``USDC`` on eth.
- ``exchange``: an exchange slug from the wallet labels, or ``all`` (default: every labelled exchange as one,
  exchange-to-exchange transfers counted as internal).
- ``interval``: ``1h`` (stored hourly bars) or ``block`` (per block height, computed from the stored flows,
  with ``block_height`` and ``block_time`` instead of ``bucket_start``); ``start``/``end``: ISO 8601, UTC when
  no zone is given; default the last 24 hours; at most 20,000 hours per request.

Fields per bar (a public contract): ``bucket_start`` (hour start, ISO 8601 UTC), ``exchange``, ``inflow``,
``outflow``, ``netflow`` (inflow - outflow; positive = coins moving onto exchanges), ``internal`` (between the
exchange's own addresses, change included), ``fee`` (the exchange's share of fees): exact decimal strings in
the asset's units; ``inflow_txs`` / ``outflow_txs``: transactions with inflow / outflow; ``mean_inflow``: inflow
per inflow transaction (asset units, float); ``whale_ratio``: share of the inflow carried by the WHALE_TOP_N
largest inflow transactions; ``netflow_z``: netflow against the preceding NETFLOW_Z_WINDOW_DAYS of hours (null
until enough history, or when it is flat); ``price_usd``: our hourly close (stablecoins 1); ``inflow_usd``,
``outflow_usd``, ``netflow_usd``; ``reserve``: summed balance of the exchange's labelled wallets at that hour
(exact decimal string, null when unknown). Hours without any flow of the exchange have no row (read: zero).
Only final flows count (``BTC_MIN_CONFIRMATIONS`` on Bitcoin). Bad parameters get HTTP 400 with a message.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from django_ratelimit.decorators import ratelimit

from apps.api.params import BadRequest, parse_time
from apps.api.views import _api_rate, _client_key
from apps.flows import selectors
from apps.flows.models import ALL_EXCHANGES

CHAIN_ASSETS = {"btc": ("BTC",), "eth": ("USDT", "USDC")}
INTERVALS = ("1h", "block")
MAX_HOURS = 20_000
DEFAULT_SPAN = timedelta(hours=24)
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


@dataclass(frozen=True)
class FlowQuery:
    chain: str
    asset: str
    exchange: str
    interval: str
    start: datetime
    end: datetime
    format: str


def flow_query_parse(params) -> FlowQuery:
    chain = params.get("chain", "btc").lower()
    if chain not in CHAIN_ASSETS:
        raise BadRequest(f"chain must be one of {', '.join(CHAIN_ASSETS)}, got {chain!r}")
    asset = params.get("asset", CHAIN_ASSETS[chain][0]).upper()
    if asset not in CHAIN_ASSETS[chain]:
        raise BadRequest(f"asset on chain {chain} must be one of {', '.join(CHAIN_ASSETS[chain])}, got {asset!r}")
    interval = params.get("interval", "1h")
    if interval not in INTERVALS:
        raise BadRequest(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    fmt = params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest(f"format must be json or csv, got {fmt!r}")
    exchange = params.get("exchange", ALL_EXCHANGES).lower()
    if not _SLUG.fullmatch(exchange) or not selectors.exchange_known(chain=chain, exchange=exchange):
        raise BadRequest(f"unknown exchange {exchange!r} on chain {chain} (use a slug from the wallet labels, or all)")
    try:
        end = parse_time(params.get("end"), "end") or datetime.now(tz=UTC)
        start = parse_time(params.get("start"), "start") or end - DEFAULT_SPAN
    except OverflowError:
        raise BadRequest("start and end must be times between years 1 and 9999") from None
    if start >= end:
        raise BadRequest("start must be before end")
    if (end - start) / timedelta(hours=1) > MAX_HOURS:
        raise BadRequest(f"range too long: at most {MAX_HOURS:,} hourly bars per request")
    return FlowQuery(chain, asset, exchange, interval, start, end, fmt)


@csrf_exempt
@require_GET
@ratelimit(key=_client_key, rate=_api_rate, block=True)
def flows(request):
    try:
        q = flow_query_parse(request.GET)
    except BadRequest as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    if q.interval == "block":
        rows = selectors.flow_blocks(chain=q.chain, asset=q.asset, start=q.start, end=q.end, exchange=q.exchange)
        fields = selectors.BLOCK_FIELDS
    else:
        rows = selectors.flow_bars(chain=q.chain, asset=q.asset, start=q.start, end=q.end, exchange=q.exchange,
                                   interval=q.interval)
        fields = selectors.API_FIELDS
    if q.format == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        name = f"flows_{q.chain}_{q.asset}_{q.exchange}_{q.interval}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        writer = csv.DictWriter(response, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return response
    return JsonResponse({
        "chain": q.chain, "asset": q.asset, "unit": q.asset, "exchange": q.exchange, "interval": q.interval,
        "start": selectors.iso(q.start), "end": selectors.iso(q.end),
        "bars": [{k: row[k] for k in fields} for row in rows],
    })
