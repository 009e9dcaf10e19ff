"""GET /api/v1/bars, /pressure and /episodes: selling-pressure data as JSON or CSV.

Parameters and answers are declared in apps/api/schemas.py. The 200 bodies are built from the selectors'
rows and sent as they are (validating thousands of rows again on the way out would only cost time; the
schema test checks real answers against the declared schema instead).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Query, Router

from apps.api.responses import ApiError, csv_response, get_operation
from apps.api.schemas import (
    BarQuery,
    Bars,
    EpisodeQuery,
    Episodes,
    Pressure,
    PressureQuery,
    TrackRecordOut,
    TrackRecordQuery,
)
from apps.flows.selectors import iso
from apps.markets.models import Instrument
from apps.pressure.indicators.index import DEFAULT_WEIGHTS
from apps.pressure.selectors import (
    API_FIELDS,
    PRESSURE_FIELDS,
    bars_for_range,
    episode_outcomes,
    episode_serialize,
    episodes_list,
    instrument_lookup,
)
from apps.pressure.selectors import pressure_for_range as pressure_rows
from apps.pressure.services import track_record_compute
from pressureweb.lib.times import dt_to_ms

router = Router(tags=["pressure"])

MAX_EPISODES = 1000
EPISODE_FIELDS = ("exchange", "market", "symbol", "interval", "start", "confirmed_at", "peak_time", "peak_spi", "end",
                  "bars", "drawdown", "source")
_PARTS = ("value", "z", "contribution")


def instrument_get(*, exchange: str, market: str, symbol: str) -> Instrument:
    instrument = instrument_lookup(exchange=exchange, market=market, symbol=symbol)
    if instrument is None:
        raise ApiError(f"unknown instrument {exchange}/{market}/{symbol} (replayed data lives under "
                       "exchange=binance-replay)")
    return instrument


def _instrument_rows(query: BarQuery | PressureQuery, read: Callable[..., list[dict]]) -> tuple[Instrument, list[dict]]:
    """The instrument a range query names, and the rows ``read`` gives of it for the query's interval and range."""
    instrument = instrument_get(exchange=query.exchange, market=query.market, symbol=query.symbol)
    return instrument, read(instrument=instrument, interval=query.interval, start=query.start, end=query.end)


def _instrument_info(instrument: Instrument) -> dict:
    return {
        "exchange": instrument.exchange.slug, "market": instrument.market, "symbol": instrument.symbol,
        "base": instrument.base, "quote": instrument.quote, "kind": instrument.kind,
        "source": "replay" if instrument.is_replay else "live",
    }


@get_operation(router, "bars", ok=Bars, summary="Selling-pressure bars of one instrument")
def bars(request: HttpRequest, query: Query[BarQuery]) -> HttpResponse:
    instrument, rows = _instrument_rows(query, bars_for_range)
    if query.format == "csv":
        name = f"{instrument.exchange.slug}_{instrument.market}_{instrument.symbol}_{query.interval}.csv"
        return csv_response(filename=name, fieldnames=API_FIELDS, rows=rows)
    return JsonResponse({
        "instrument": _instrument_info(instrument), "interval": query.interval,
        "start": iso(query.start), "end": iso(query.end),
        "bars": [{k: row[k] for k in API_FIELDS} for row in rows],
    })


def _pressure_flat(row: dict, names) -> dict:
    """One CSV row: the components spread over <name>_value, <name>_z and <name>_contribution columns."""
    item = {"bucket_start": row["bucket_start"], "final": row["final"], "spi": row["spi"], "regime": row["regime"],
            "drop_risk": row["drop_risk"], "missing": ";".join(row["missing"])}
    for name in names:
        component = row["components"].get(name, {})
        for part in _PARTS:
            item[f"{name}_{part}"] = component.get(part)
    return item


@get_operation(router, "pressure", ok=Pressure, summary="Selling Pressure Index per bar with its components")
def pressure(request: HttpRequest, query: Query[PressureQuery]) -> HttpResponse:
    instrument, rows = _instrument_rows(query, pressure_rows)
    if query.format == "csv":
        names = list(DEFAULT_WEIGHTS)
        fields = ["bucket_start", "final", "spi", "regime", "drop_risk",
                  *(f"{n}_{p}" for n in names for p in _PARTS), "missing"]
        return csv_response(filename=f"{instrument.symbol}_pressure.csv", fieldnames=fields,
                            rows=(_pressure_flat(row, names) for row in rows))
    return JsonResponse({"instrument": _instrument_info(instrument), "interval": query.interval,
                         "fields": list(PRESSURE_FIELDS), "pressure": rows})


@get_operation(router, "episodes", ok=Episodes, summary="Selling-pressure episodes")
def episodes(request: HttpRequest, query: Query[EpisodeQuery]) -> HttpResponse:
    instrument = None
    if query.instrument_given:
        instrument = instrument_lookup(exchange=query.exchange, market=query.market, symbol=query.symbol)
        if instrument is None:
            raise ApiError("unknown instrument")
    found = episodes_list(instrument=instrument, start=query.start, end=query.end,
                          interval=query.interval)[:MAX_EPISODES]
    rows = [episode_serialize(e) for e in found]
    if query.format == "csv":
        return csv_response(filename="episodes.csv", fieldnames=EPISODE_FIELDS, rows=rows)
    body = {"episodes": rows}
    if instrument is not None:
        body["outcomes"] = episode_outcomes(instrument=instrument, interval=query.interval or "1m")
    return JsonResponse(body)


_SIGNAL_FIELDS = ("auc", "brier", "brier_skill", "precision", "recall", "lift", "lead_time_minutes_median",
                  "false_alarms_per_day")


@get_operation(router, "track-record", ok=TrackRecordOut,
               summary="How the index, its regimes and the drop-risk forecast foresaw drops, beside baselines")
def track_record(request: HttpRequest, query: Query[TrackRecordQuery]) -> HttpResponse:
    instrument = instrument_get(exchange=query.exchange, market=query.market, symbol=query.symbol)
    result = track_record_compute(
        instrument=instrument, interval=query.interval, horizon_minutes=query.horizon_minutes,
        drop_pct=query.drop_pct, start_ms=dt_to_ms(query.start) if query.start else None,
        end_ms=dt_to_ms(query.end) if query.end else None)
    signals = {name: {k: values.get(k) for k in _SIGNAL_FIELDS} for name, values in result["signals"].items()}
    if query.format == "csv":
        rows = [{"signal": name, **values} for name, values in signals.items()]
        return csv_response(filename=f"{instrument.symbol}_track_record.csv", fieldnames=["signal", *_SIGNAL_FIELDS],
                            rows=rows)
    return JsonResponse({
        "instrument": _instrument_info(instrument), "interval": query.interval,
        "horizon_minutes": query.horizon_minutes, "drop_pct": query.drop_pct, "bars": result["bars"],
        "events": result["events"], "base_rate": result["base_rate"], "history_days": result["history_days"],
        "signals": signals,
    })
