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

import re
from datetime import datetime, timedelta
from typing import Annotated, Literal

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Query, Router, Schema
from pydantic import BeforeValidator, Field, WithJsonSchema, create_model, model_validator

from apps.api.responses import ApiError, csv_response, get_operation
from apps.api.schemas import DecimalText, End, Float, Format, Start, one_of
from apps.flows import selectors
from apps.flows.models import ALL_EXCHANGES
from pressureweb.lib.params import BadRequest, time_window
from pressureweb.lib.times import iso_z

CHAIN_ASSETS = {"btc": ("BTC",), "eth": ("USDT", "USDC")}
INTERVALS = ("1h", "block")
MAX_HOURS = 20_000
DEFAULT_SPAN = timedelta(hours=24)
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")

router = Router(tags=["flows"])


def _unknown_exchange(*, chain: str, exchange: str) -> str:
    return f"unknown exchange {exchange!r} on chain {chain} (use a slug from the wallet labels, or all)"


def _lower(value):
    return value.lower() if isinstance(value, str) else value


def _upper(value):
    return value.upper() if isinstance(value, str) else value


class FlowQuery(Schema):
    # Chain, asset and exchange are read in any case; the validators run right to left (case first).
    chain: Annotated[Literal["btc", "eth"], one_of("chain", tuple(CHAIN_ASSETS)), BeforeValidator(_lower)] = "btc"
    # Checked against the chain below (the message names the chain's assets).
    asset: Annotated[str | None, BeforeValidator(_upper), WithJsonSchema(
        {"type": "string", "enum": ["BTC", "USDT", "USDC"], "description": "BTC on btc; USDT (default) or USDC on eth"}
    )] = None
    exchange: Annotated[str, BeforeValidator(_lower), Field(
        max_length=64, examples=["binance"], description="An exchange slug from the wallet labels, or all")
    ] = ALL_EXCHANGES
    interval: Annotated[Literal["1h", "block"], one_of("interval", INTERVALS)] = "1h"
    start: Start = None
    end: End = None
    format: Format = "json"

    @model_validator(mode="after")
    def _check(self):
        if self.asset is None:
            self.asset = CHAIN_ASSETS[self.chain][0]
        if self.asset not in CHAIN_ASSETS[self.chain]:
            choices = ", ".join(CHAIN_ASSETS[self.chain])
            raise BadRequest(f"asset on chain {self.chain} must be one of {choices}, got {self.asset!r}")
        if not _SLUG.fullmatch(self.exchange):
            raise BadRequest(_unknown_exchange(chain=self.chain, exchange=self.exchange))
        self.start, self.end = time_window(start=self.start, end=self.end, default_span=DEFAULT_SPAN)
        if (self.end - self.start) / timedelta(hours=1) > MAX_HOURS:
            raise BadRequest(f"range too long: at most {MAX_HOURS:,} hourly bars per request")
        return self


# The flows of one period, after its own fields (bucket_start, or block_height and block_time), in this order.
_PERIOD_FLOWS = {
    "exchange": (str, ...),
    "inflow": (DecimalText, ...),
    "outflow": (DecimalText, ...),
    "netflow": (DecimalText, ...),
    "internal": (DecimalText, ...),
    "fee": (DecimalText, ...),
    "inflow_txs": (int | None, ...),
    "outflow_txs": (int | None, ...),
    "mean_inflow": (Float, ...),
    "whale_ratio": (Float, ...),
    "netflow_z": (Float, ...),
}

FlowBar = create_model(
    "FlowBar", __base__=Schema, bucket_start=(datetime, ...), **_PERIOD_FLOWS,
    price_usd=(Float, ...), inflow_usd=(Float, ...), outflow_usd=(Float, ...), netflow_usd=(Float, ...),
    reserve=(DecimalText, ...),
)
FlowBlock = create_model("FlowBlock", __base__=Schema, block_height=(int, ...), block_time=(datetime, ...),
                         **_PERIOD_FLOWS)


class Flows(Schema):
    chain: Literal["btc", "eth"]
    asset: str
    unit: str
    exchange: str
    interval: Literal["1h", "block"]
    start: datetime
    end: datetime
    bars: list[FlowBar] | list[FlowBlock] = Field(description="Per hour (interval=1h) or per block, oldest first")


@get_operation(router, "flows", ok=Flows,
               summary="Exchange inflow, outflow and netflow per hour or block (on-chain)")
def flows(request: HttpRequest, query: Query[FlowQuery]) -> HttpResponse:
    q = query
    if not selectors.exchange_known(chain=q.chain, exchange=q.exchange):
        raise ApiError(_unknown_exchange(chain=q.chain, exchange=q.exchange))
    if q.interval == "block":
        rows = selectors.flow_blocks(chain=q.chain, asset=q.asset, start=q.start, end=q.end, exchange=q.exchange)
        fields = selectors.BLOCK_FIELDS
    else:
        rows = selectors.flow_bars(chain=q.chain, asset=q.asset, start=q.start, end=q.end, exchange=q.exchange,
                                   interval=q.interval)
        fields = selectors.API_FIELDS
    if q.format == "csv":
        return csv_response(filename=f"flows_{q.chain}_{q.asset}_{q.exchange}_{q.interval}.csv", fieldnames=fields,
                            rows=rows)
    return JsonResponse({
        "chain": q.chain, "asset": q.asset, "unit": q.asset, "exchange": q.exchange, "interval": q.interval,
        "start": iso_z(q.start), "end": iso_z(q.end),
        "bars": [{k: row[k] for k in fields} for row in rows],
    })
