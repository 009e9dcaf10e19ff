"""Writes of the drop-risk forecast and the track record, from an instrument's final bars.

The math is apps.pressure.forecast (fits, predictions) and apps.pressure.track_record (events, metrics);
this module reads the bars they need, stores fitted models, per-bar predictions and evaluations. Fits are
walk-forward: a model refit at a UTC month start sees only bars whose whole horizon ended before it.
"""

from __future__ import annotations

import logging

import numpy as np
import orjson
import pandas as pd
from django.conf import settings
from django.db import connection, transaction

from apps.markets.models import Instrument
from apps.pressure import bars as barmath
from apps.pressure import forecast as forecast_math
from apps.pressure import track_record as track_math
from apps.pressure.models import ForecastModel, PressureBar, TrackRecord
from apps.pressure.services.index import bars_fields_update
from apps.pressure.services.versions import bars_version_bump_on_commit
from pressureweb.lib.times import iso_z, ms_to_dt, now_ms

logger = logging.getLogger(__name__)

# The index and the z-scores of its components the forecast may use (missing ones count as their mean).
COMPONENTS = ("spi", "z_taker_sell_ratio", "z_cvd_slope", "z_vpin", "z_kyles_lambda", "z_trade_count_imbalance",
              "z_large_trade_sell_share", "z_ofi", "z_imbalance", "z_bid_withdrawal", "z_spread_widening")
_COLUMNS = ("open", "high", "low", "close", "taker_buy_base", "taker_sell_base", "trades", "spi", "regime",
            "drop_risk", "spi_components")


def drop_risk_horizon(*, interval: str) -> int:
    """The forecast's horizon on bars of ``interval`` (minutes): DROP_RISK_HORIZON_MINUTES where it is a whole
    number of bars (1m, 5m), else one bar (60 minutes on 1h bars)."""
    return forecast_math.horizon_minutes_for(interval_ms=barmath.INTERVAL_MS[interval],
                                             configured=settings.DROP_RISK_HORIZON_MINUTES)


def forecast_spec(*, interval: str, horizon_minutes: int | None = None,
                  drop_pct: float | None = None) -> forecast_math.DropRiskSpec:
    return forecast_math.DropRiskSpec(
        interval_ms=barmath.INTERVAL_MS[interval],
        horizon_minutes=drop_risk_horizon(interval=interval) if horizon_minutes is None else horizon_minutes,
        drop_pct=settings.DROP_RISK_PCT if drop_pct is None else drop_pct, components=COMPONENTS)


def final_bars_frame(*, instrument: Instrument, interval: str, start_ms: int | None = None, end_ms: int | None = None,
                     components: bool = True) -> pd.DataFrame:
    """The instrument's final bars as floats, indexed by bar start (ms): what the forecast and the track
    record read (open/high/low/close, volume, taker_sell_ratio, trades, spi, regime, drop_risk, z_<component>)."""
    query = PressureBar.objects.filter(instrument=instrument, interval=interval, final=True)
    if start_ms is not None:
        query = query.filter(bucket_start__gte=ms_to_dt(start_ms))
    if end_ms is not None:
        query = query.filter(bucket_start__lt=ms_to_dt(end_ms))
    columns = _COLUMNS if components else _COLUMNS[:-1]
    sql = query.order_by("bucket_start").values_list("bucket_start", *columns).query
    with connection.cursor() as cursor:  # plain rows: no Decimal or datetime objects per cell
        cursor.execute(*sql.sql_with_params())
        rows = cursor.fetchall()
    raw = pd.DataFrame(rows, columns=["bucket_start", *columns])
    starts = pd.to_datetime(raw.pop("bucket_start"), utc=True, format="ISO8601")
    index = pd.Index(((starts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy(np.int64))
    numbers = raw[["open", "high", "low", "close", "taker_buy_base", "taker_sell_base", "trades", "spi",
                   "drop_risk"]].astype(np.float64)
    volume = numbers["taker_buy_base"] + numbers["taker_sell_base"]
    frame = pd.DataFrame({
        "open": numbers["open"], "high": numbers["high"], "low": numbers["low"], "close": numbers["close"],
        "volume": volume, "taker_sell_ratio": (numbers["taker_sell_base"] / volume).where(volume > 0),
        "trades": numbers["trades"], "spi": numbers["spi"], "regime": raw["regime"].where(raw["regime"] != "", None),
        "drop_risk": numbers["drop_risk"],
    })
    frame.index = index
    if components:
        z = [_z_scores(text) for text in raw["spi_components"]]
        for name in COMPONENTS[1:]:
            frame[name] = np.fromiter((row.get(name[2:], np.nan) for row in z), dtype=np.float64, count=len(z))
    return frame


def _z_scores(value) -> dict[str, float]:
    parsed = orjson.loads(value) if isinstance(value, str | bytes) else (value or {})
    return {k: np.nan if c.get("z") is None else c["z"] for k, c in parsed.items()}


def _stored(model: forecast_math.DropRiskModel, *, instrument: Instrument, interval: str) -> ForecastModel:
    spec = model.spec
    stored, _ = ForecastModel.objects.update_or_create(
        instrument=instrument, interval=interval, horizon_minutes=spec.horizon_minutes, drop_pct=spec.drop_pct,
        train_end=ms_to_dt(model.train_end_ms),
        defaults={"version": model.version, "base_rate": model.base_rate, "params": model.to_json()})
    return stored


def forecast_model_refit(*, instrument: Instrument, interval: str,
                         train_end_ms: int | None = None) -> ForecastModel | None:
    """Fit the drop-risk model of the current UTC month (or of the month starting at ``train_end_ms``) from the
    final bars before it; None when history is too short (MIN_TRAIN_DAYS, MIN_TRAIN_EVENTS)."""
    end = train_end_ms if train_end_ms is not None else forecast_math.refit_times(now_ms() - 40 * 86_400_000,
                                                                                 now_ms())[-1]
    frame = final_bars_frame(instrument=instrument, interval=interval, end_ms=end)
    model = forecast_math.fit(frame, spec=forecast_spec(interval=interval), train_end_ms=end)
    return None if model is None else _stored(model, instrument=instrument, interval=interval)


def _model_for(*, instrument: Instrument, interval: str, at_ms: int) -> forecast_math.DropRiskModel | None:
    spec = forecast_spec(interval=interval)
    stored = (ForecastModel.objects.filter(instrument=instrument, interval=interval,
                                           horizon_minutes=spec.horizon_minutes, drop_pct=spec.drop_pct,
                                           train_end__lte=ms_to_dt(at_ms)).order_by("-train_end").first())
    return None if stored is None else forecast_math.DropRiskModel.from_json(stored.params)


def drop_risk_predict(*, instrument: Instrument, interval: str, bucket_ms: int) -> float | None:
    """The drop risk of one final bar from the latest model fitted before it, stored on the bar."""
    model = _model_for(instrument=instrument, interval=interval, at_ms=bucket_ms)
    if model is None:
        return None
    history = forecast_math.HISTORY_DAYS * 86_400_000
    frame = final_bars_frame(instrument=instrument, interval=interval, start_ms=bucket_ms - history,
                             end_ms=bucket_ms + 1, components=False)
    if frame.empty or frame.index[-1] != bucket_ms:
        return None
    latest = final_bars_frame(instrument=instrument, interval=interval, start_ms=bucket_ms, end_ms=bucket_ms + 1)
    for name in COMPONENTS[1:]:
        frame[name] = np.nan
        frame.loc[bucket_ms, name] = latest[name].iloc[-1]
    value = model.predict(frame, last=1).iloc[-1]
    risk = None if np.isnan(value) else float(value)
    PressureBar.objects.filter(instrument=instrument, interval=interval, bucket_start=ms_to_dt(bucket_ms)).update(
        drop_risk=risk, drop_risk_model=model.version if risk is not None else "")
    bars_version_bump_on_commit(instrument.pk)
    return risk


def drop_risk_history_refresh(*, instrument: Instrument, interval: str, frame: pd.DataFrame | None = None) -> int:
    """Walk-forward predictions for every final bar of the instrument (monthly refits, each from the bars before
    it), the models stored: after a history import, or when the forecast changes. Returns the bars scored."""
    frame = final_bars_frame(instrument=instrument, interval=interval) if frame is None else frame
    predicted, models = forecast_math.walk_forward(frame, spec=forecast_spec(interval=interval))
    with transaction.atomic():
        for model in models.values():
            _stored(model, instrument=instrument, interval=interval)
        scored = predicted.dropna(subset=["drop_risk"])
        rows = {int(t): {"drop_risk": float(risk), "drop_risk_model": version}
                for t, risk, version in zip(scored.index, scored["drop_risk"], scored["drop_risk_model"], strict=True)}
        bars_fields_update(instrument=instrument, interval=interval, rows=rows, fields=["drop_risk", "drop_risk_model"])
        bars_version_bump_on_commit(instrument.pk)
    return len(rows)


def track_record_compute(*, instrument: Instrument, interval: str, horizon_minutes: int, drop_pct: float,
                         start_ms: int | None = None, end_ms: int | None = None, curves: bool = False) -> dict:
    """The track record of [start, end): the stored per-bar forecast for the configured horizon and drop, a
    walk-forward refit in this run for any other (from all the history before `end` plus the horizon)."""
    size = barmath.INTERVAL_MS[interval]
    reach = None if end_ms is None else end_ms + horizon_minutes * 60_000 + size
    frame = final_bars_frame(instrument=instrument, interval=interval, end_ms=reach)
    if frame.empty:
        return {"bars": 0, "events": 0, "base_rate": None, "signals": {}, "history_days": 0}
    configured = (horizon_minutes, drop_pct) == (drop_risk_horizon(interval=interval), settings.DROP_RISK_PCT)
    if not configured or frame["drop_risk"].isna().all():
        spec = forecast_spec(interval=interval, horizon_minutes=horizon_minutes, drop_pct=drop_pct)
        frame["drop_risk"] = forecast_math.walk_forward(frame, spec=spec)[0]["drop_risk"]
    frame = frame.join(track_math.regime_flags(frame["regime"]))
    result = track_math.track_record(
        frame, interval_ms=size, horizon_minutes=horizon_minutes, drop_pct=drop_pct,
        start_ms=start_ms if start_ms is not None else int(frame.index[0]),
        end_ms=end_ms if end_ms is not None else int(frame.index[-1]) + size,
        signals=track_math.default_signals(drop_risk_threshold=settings.DROP_RISK_ALERT), curves=curves)
    result["history_days"] = (int(frame.index[-1]) - int(frame.index[0])) / 86_400_000
    return _json_safe(result)


def track_record_refresh(*, instrument: Instrument, interval: str, horizon_minutes: int | None = None,
                         drop_pct: float | None = None) -> TrackRecord | None:
    """Evaluate all of an instrument's final bars and store the result (with curves) for the pages."""
    horizon = drop_risk_horizon(interval=interval) if horizon_minutes is None else horizon_minutes
    drop = settings.DROP_RISK_PCT if drop_pct is None else drop_pct
    bounds = PressureBar.objects.filter(instrument=instrument, interval=interval, final=True)
    first = bounds.order_by("bucket_start").values_list("bucket_start", flat=True).first()
    if first is None:
        return None
    last = bounds.order_by("-bucket_start").values_list("bucket_start", flat=True).first()
    result = track_record_compute(instrument=instrument, interval=interval, horizon_minutes=horizon, drop_pct=drop,
                                  curves=True)
    record, _ = TrackRecord.objects.update_or_create(
        instrument=instrument, interval=interval, horizon_minutes=horizon, drop_pct=drop,
        defaults={"start": first, "end": last, "result": result})
    return record


def _json_safe(value):
    """NaN and infinities as null (JSON has neither)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, np.floating | np.integer):
        return _json_safe(value.item())
    return value


def track_record_timeline(*, instrument: Instrument, interval: str, horizon_minutes: int, drop_pct: float,
                          days: float = 3) -> list[dict]:
    """The last `days` of final bars with the drop that followed each (or not), the forecast and the index:
    the timeline of events and signals. Bars whose horizon has not ended yet show no event either way."""
    size = barmath.INTERVAL_MS[interval]
    last = PressureBar.objects.filter(instrument=instrument, interval=interval, final=True).order_by(
        "-bucket_start").values_list("bucket_start", flat=True).first()
    if last is None:
        return []
    end = int(last.timestamp() * 1000) + size
    frame = final_bars_frame(instrument=instrument, interval=interval, start_ms=end - int(days * 86_400_000),
                             end_ms=end, components=False)
    events = track_math.drop_events(frame, interval_ms=size, horizon_minutes=horizon_minutes, drop_pct=drop_pct)
    return [{"bucket_start": iso_z(ms_to_dt(int(t))), "close": row.close,
             "spi": None if np.isnan(row.spi) else row.spi,
             "drop_risk": None if np.isnan(row.drop_risk) else row.drop_risk,
             "event": bool(ev.event) if ev.has_horizon else None}
            for (t, row), ev in zip(frame.iterrows(), events.itertuples(), strict=True)]
