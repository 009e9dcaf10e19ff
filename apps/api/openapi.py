"""The OpenAPI 3.1 description of /api/v1, kept beside the code it describes."""

from apps.pressure.models import INTERVALS

_NUMBER_TEXT = {"type": ["string", "null"], "description": "Exact decimal as text", "pattern": r"^-?\d+(\.\d+)?$"}
_RATIO = {"type": ["number", "null"]}


def openapi_schema() -> dict:
    bar = {
        "type": "object",
        "required": ["bucket_start", "open", "close", "trades", "taker_sell_ratio", "cvd_base"],
        "properties": {
            "bucket_start": {"type": "string", "format": "date-time"},
            **{k: _NUMBER_TEXT for k in ("open", "high", "low", "close", "vwap", "taker_buy_base", "taker_sell_base",
                                         "taker_buy_quote", "taker_sell_quote", "delta_base", "cvd_base")},
            "trades": {"type": "integer", "minimum": 0},
            **{k: _RATIO for k in ("taker_sell_ratio", "spread_bps", "imbalance_0_1pct", "imbalance_0_5pct",
                                   "imbalance_1pct", "imbalance_2pct")},
        },
    }
    error = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
    params = [
        {"name": "exchange", "in": "query", "required": True, "schema": {"type": "string"},
         "example": "binance-replay"},
        {"name": "market", "in": "query", "required": True, "schema": {"type": "string"}, "example": "spot"},
        {"name": "symbol", "in": "query", "required": True, "schema": {"type": "string"}, "example": "BTCUSDT"},
        {"name": "interval", "in": "query", "schema": {"type": "string", "enum": list(INTERVALS), "default": "1m"}},
        {"name": "start", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "end", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv"], "default": "json"}},
    ]
    instrument_params = params[:3]
    window = [params[4], params[5], params[6]]
    component = {"type": "object", "properties": {k: {"type": ["number", "null"]} for k in ("value", "z",
                                                                                          "contribution")}}
    pressure_row = {
        "type": "object", "required": ["bucket_start", "spi", "regime", "components", "missing"],
        "properties": {
            "bucket_start": {"type": "string", "format": "date-time"},
            "spi": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
            "regime": {"type": ["string", "null"], "enum": ["calm", "elevated", "high", "extreme", None]},
            "components": {"type": "object", "additionalProperties": component},
            "missing": {"type": "array", "items": {"type": "string"}},
        },
    }
    episode = {"type": "object", "required": ["start", "peak_spi", "source"], "properties": {
        "start": {"type": "string", "format": "date-time"}, "end": {"type": ["string", "null"]},
        "peak_spi": {"type": "number"}, "source": {"type": "string"}, "drawdown": {"type": "number"}}}
    errors = {"400": {"description": "A bad parameter", "content": {"application/json": {"schema": error}}},
              "429": {"description": "Rate limited", "content": {"application/json": {"schema": error}}}}
    paths_more = {
        "/api/v1/pressure": {"get": {
            "operationId": "pressure", "summary": "Selling Pressure Index per 1m bar with its components",
            "parameters": [*params[:3], {"name": "interval", "in": "query", "schema": {"type": "string",
                                                                                        "enum": ["1m"]}}, *window],
            "responses": {"200": {"description": "SPI rows", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "pressure": {"type": "array", "items": pressure_row}}}},
                "text/csv": {"schema": {"type": "string"}}}}, **errors},
        }},
        "/api/v1/episodes": {"get": {
            "operationId": "episodes", "summary": "Selling-pressure episodes",
            "parameters": [{**p, "required": False} for p in instrument_params] + window,
            "responses": {"200": {"description": "Episodes, newest first", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "episodes": {"type": "array", "items": episode}}}},
                "text/csv": {"schema": {"type": "string"}}}}, **errors},
        }},
    }
    flow_bar = {"type": "object", "required": ["exchange", "inflow", "outflow", "netflow"],
                "properties": {"bucket_start": {"type": "string", "format": "date-time"},
                               "block_height": {"type": "integer"}, "block_time": {"type": "string"},
                               "exchange": {"type": "string"},
                               **{k: _NUMBER_TEXT for k in ("inflow", "outflow", "netflow", "internal", "fee",
                                                            "mean_inflow", "reserve")},
                               **{k: {"type": ["integer", "null"]} for k in ("inflow_txs", "outflow_txs")},
                               **{k: _RATIO for k in ("whale_ratio", "netflow_z", "price_usd", "inflow_usd",
                                                      "outflow_usd", "netflow_usd")}}}
    paths_more["/api/v1/flows"] = {"get": {
        "operationId": "flows", "summary": "Exchange inflow, outflow and netflow per hour (on-chain)",
        "parameters": [
            {"name": "chain", "in": "query", "schema": {"type": "string", "enum": ["btc", "eth"]}},
            {"name": "asset", "in": "query", "schema": {"type": "string", "enum": ["BTC", "ETH", "USDT", "USDC"]}},
            {"name": "exchange", "in": "query", "schema": {"type": "string"}, "example": "binance"},
            {"name": "interval", "in": "query", "schema": {"type": "string", "enum": ["1h", "block"]}}, *window],
        "responses": {"200": {"description": "Flow bars", "content": {
            "application/json": {"schema": {"type": "object", "properties": {
                "bars": {"type": "array", "items": flow_bar}}}},
            "text/csv": {"schema": {"type": "string"}}}}, **errors},
    }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "PressureWeb API", "version": "1", "description": "Selling-pressure bars. Times are UTC."},
        "paths": {
            "/api/v1/bars": {
                "get": {
                    "operationId": "bars",
                    "summary": "Selling-pressure bars of one instrument",
                    "parameters": params,
                    "responses": {
                        "200": {"description": "Bars, oldest first", "content": {
                            "application/json": {"schema": {"type": "object", "required": ["instrument", "bars"],
                                                             "properties": {"bars": {"type": "array", "items": bar}}}},
                            "text/csv": {"schema": {"type": "string"}},
                        }},
                        "400": {"description": "A bad parameter", "content": {"application/json": {"schema": error}}},
                        "429": {"description": "Rate limited", "content": {"application/json": {"schema": error}}},
                    },
                }
            },
            **paths_more,
        },
    }
