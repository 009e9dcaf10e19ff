"""Writes of the Selling Pressure Index: the index of stored bars, final bars, regime calibrations, episodes.

The math is the one engine in apps.pressure.spi and apps.pressure.indicators; this module reads the bars
it needs, writes what it computes, and decides when a bar is final: once its bucket has ended and
BAR_FINAL_GRACE_MS has passed on the instrument's clock (the later of the wall clock and the newest
event seen). Regimes, episodes, alerts and the headline act on final bars only.
"""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from apps.markets.models import Instrument
from apps.pressure import bars as barmath
from apps.pressure import spi as spi_math
from apps.pressure.indicators import crossvenue
from apps.pressure.indicators import episodes as episode_math
from apps.pressure.indicators import index as index_math
from apps.pressure.models import Episode, PressureBar, RegimeCalibration
from apps.pressure.providers import components_external
from apps.pressure.selectors import bars_due_final
from apps.pressure.services.versions import bars_version_bump_on_commit
from pressureweb.lib.times import dt_to_ms, ms_to_dt

SPI_FIELDS = ["spi", "regime", "spi_components", "spi_missing"]


def _interval_ms(interval: str) -> int:
    return barmath.INTERVAL_MS[interval]


def _bars_frame(*, instrument: Instrument, interval: str, start_ms: int, end_ms: int) -> pd.DataFrame:
    columns = [*spi_math.BAR_COLUMNS[1:], "final"]
    query = PressureBar.objects.filter(
        instrument=instrument, interval=interval, bucket_start__gte=ms_to_dt(start_ms),
        bucket_start__lt=ms_to_dt(end_ms),
    ).order_by("bucket_start").values_list("bucket_start", *columns).query
    # The ORM's SQL without its per-value converters (a Decimal and a datetime per cell): every
    # second's SPI reads a few hundred bars, and the frame wants floats anyway.
    with connection.cursor() as cursor:
        cursor.execute(*query.sql_with_params())
        rows = cursor.fetchall()
    frame = pd.DataFrame(rows, columns=["bucket_start", *columns])
    starts = pd.to_datetime(frame.pop("bucket_start"), utc=True, format="ISO8601")
    frame.index = ((starts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy(dtype=np.int64)
    return frame.astype(np.float64)


def _external_components(*, instrument: Instrument, interval: str, start_ms: int,
                         end_ms: int) -> pd.DataFrame | None:
    """Components from outside the instrument's own bars: what the registered providers supply (exchange flows,
    derivatives), and the spot-vs-perp divergence against the sibling market."""
    parts = components_external(instrument=instrument, interval=interval, interval_ms=_interval_ms(interval),
                                start_ms=start_ms, end_ms=end_ms)
    divergence = _spot_perp_divergence(instrument=instrument, interval=interval, start_ms=start_ms, end_ms=end_ms)
    if divergence is not None:
        parts.append(divergence)
    return pd.concat(parts, axis=1) if parts else None


def _spot_perp_divergence(*, instrument: Instrument, interval: str, start_ms: int,
                          end_ms: int) -> pd.DataFrame | None:
    sibling = (Instrument.objects.filter(exchange_id=instrument.exchange_id, base=instrument.base,
                                         quote=instrument.quote).exclude(kind=instrument.kind).first())
    if sibling is None:
        return None
    mine = _bars_frame(instrument=instrument, interval=interval, start_ms=start_ms, end_ms=end_ms)
    theirs = _bars_frame(instrument=sibling, interval=interval, start_ms=start_ms, end_ms=end_ms)
    if mine.empty or theirs.empty:
        return None
    perp, spot = (mine, theirs) if instrument.kind == Instrument.Kind.PERP else (theirs, mine)
    ratio = {name: (f["taker_sell_base"] / (f["taker_buy_base"] + f["taker_sell_base"])).where(
        (f["taker_buy_base"] + f["taker_sell_base"]) > 0) for name, f in (("perp", perp), ("spot", spot))}
    divergence = crossvenue.spot_perp_divergence(ratio["perp"], ratio["spot"])
    return pd.DataFrame({"spot_perp_divergence": divergence})


# --- regime calibration -------------------------------------------------------------------------------------


def regime_calibration_get(*, instrument: Instrument, interval: str, day_ms: int,
                           fresh: pd.Series | None = None) -> RegimeCalibration:
    """The thresholds in force on one UTC day (see regime_calibrations_ensure)."""
    return regime_calibrations_ensure(instrument=instrument, interval=interval, days_ms=[day_ms], fresh=fresh)[day_ms]


def regime_calibrations_ensure(*, instrument: Instrument, interval: str, days_ms,
                               fresh: pd.Series | None = None) -> dict[int, RegimeCalibration]:
    """The thresholds in force on each of these UTC days (by day start, ms), computed and stored on first use:
    percentiles of the instrument's final index values over the window before that day (walk-forward: never
    that day's). The first stored copy of a day wins.

    `fresh`: final index values (by bar start) computed but not written yet; they replace the stored
    values of their bars (a backfill's index is computed in one pass, then written).
    """
    days = sorted({int(d) for d in days_ms})
    calibrations = RegimeCalibration.objects.filter(instrument=instrument, interval=interval)
    found = {dt_to_ms(c.day): c for c in calibrations.filter(day__in=[ms_to_dt(d) for d in days])}
    missing = [d for d in days if d not in found]
    if not missing:
        return found
    # One read of the values behind every missing day (a backfill asks for months of days at once).
    stored = PressureBar.objects.filter(
        instrument=instrument, interval=interval, final=True, bucket_start__gte=ms_to_dt(
            missing[0] - index_math.REGIME_WINDOW_MS), bucket_start__lt=ms_to_dt(missing[-1])).exclude(spi=None)
    if fresh is not None and len(fresh):
        stored = stored.filter(bucket_start__lt=ms_to_dt(int(fresh.index[0])))
    rows = stored.order_by("bucket_start").values_list("bucket_start", "spi")
    times = np.fromiter((dt_to_ms(start) for start, _ in rows), dtype=np.int64)
    values = np.fromiter((value for _, value in rows), dtype=np.float64)
    if fresh is not None and len(fresh):
        times = np.concatenate((times, fresh.index.to_numpy(dtype=np.int64)))
        values = np.concatenate((values, fresh.to_numpy(dtype=np.float64)))
        order = np.argsort(times, kind="stable")
        times, values = times[order], values[order]
    minimum = settings.SPI_REGIME_MIN_BARS
    new = []
    for day in missing:
        lo, hi = np.searchsorted(times, [day - index_math.REGIME_WINDOW_MS, day])
        thresholds, count = index_math.thresholds_of(values[lo:hi], min_bars=minimum,
                                                     defaults=settings.SPI_REGIME_THRESHOLDS)
        new.append(RegimeCalibration(
            instrument=instrument, interval=interval, day=ms_to_dt(day), elevated=thresholds[0], high=thresholds[1],
            extreme=thresholds[2], bars=count if count >= minimum else 0, is_default=count < minimum))
    RegimeCalibration.objects.bulk_create(new, ignore_conflicts=True)
    found.update({dt_to_ms(c.day): c for c in calibrations.filter(day__in=[ms_to_dt(d) for d in missing])})
    return found


def _thresholds_by_bar(*, instrument: Instrument, interval: str, buckets,
                       fresh: pd.Series | None = None) -> np.ndarray:
    """(n, 3) thresholds in force for each bar start (ms)."""
    buckets = np.asarray(buckets, dtype=np.int64)
    out = np.empty((len(buckets), 3))
    days = buckets - buckets % index_math.REGIME_REFRESH_MS
    calibrations = regime_calibrations_ensure(instrument=instrument, interval=interval, days_ms=np.unique(days),
                                              fresh=fresh)
    for day, calibration in calibrations.items():
        out[days == day] = calibration.thresholds
    return out


# --- the index of stored bars -------------------------------------------------------------------------------


def spi_refresh(*, instrument: Instrument, start_ms: int, end_ms: int, interval: str = "1m") -> dict[int, dict]:
    """Recompute the SPI of the bars of `interval` starting in [start, end] from their trailing window.

    Regimes use the instrument's calibrated thresholds of each bar's day. Returns the SPI fields
    written, by bucket start (ms).
    """
    size = _interval_ms(interval)
    lo, hi = start_ms - start_ms % size, end_ms - end_ms % size + size
    lookback = (settings.SPI_WINDOW_BARS + settings.SPI_COMPONENT_WINDOW + settings.VPIN_BUCKETS + 5) * size
    frame = _bars_frame(instrument=instrument, interval=interval, start_ms=lo - lookback, end_ms=hi)
    # Two bars back as well: a sibling market's bars (spot vs perp) may have completed since.
    touched = frame.index[frame.index >= lo - 2 * size]
    if not len(touched):
        return {}
    external = _external_components(instrument=instrument, interval=interval, start_ms=lo - lookback, end_ms=hi)
    rows = spi_math.spi_rows(frame, last=len(touched), external=external, interval_ms=size)
    buckets = [r["bucket_ms"] for r in rows]
    final = frame["final"].reindex(buckets).to_numpy() > 0
    fresh = pd.Series([r["spi"] for r in rows], index=buckets, dtype=np.float64)[final].dropna()
    thresholds = _thresholds_by_bar(instrument=instrument, interval=interval, buckets=buckets, fresh=fresh)
    written = {
        row["bucket_ms"]: {
            "spi": row["spi"], "regime": index_math.regime_of(row["spi"], thresholds=tuple(t)) or "",
            "spi_missing": row["missing"],
            "spi_components": {k: v for k, v in row["components"].items() if v["value"] is not None},
        }
        for row, t in zip(rows, thresholds, strict=True)
    }
    bars_fields_update(instrument=instrument, interval=interval, rows=written, fields=SPI_FIELDS)
    return written


# Past this many bars, one UPDATE joined to a staged copy of the new values beats an UPDATE per bar.
_STAGED_FROM = 1_000


def bars_fields_update(*, instrument: Instrument, interval: str, rows: dict[int, dict], fields: list[str]) -> None:
    """Set `fields` of the stored bars given by start (ms). A few bars: one UPDATE each through the unique
    index, sent in one executemany (Django's bulk_update builds a CASE per field and row: minutes for a
    backfill). A backfill's many: staged in a temporary table, then one UPDATE ... FROM."""
    if not rows:
        return
    ops = connection.ops
    json_fields = {f for f in fields if isinstance(PressureBar._meta.get_field(f), models.JSONField)}
    cast = "::jsonb" if connection.vendor == "postgresql" else ""

    def value(name, v):
        return orjson.dumps(v).decode() if name in json_fields else v

    params = [[*(value(f, row[f]) for f in fields), ops.adapt_datetimefield_value(ms_to_dt(bucket))]
              for bucket, row in rows.items()]
    if len(params) >= _STAGED_FROM:
        _bars_fields_update_staged(instrument=instrument, interval=interval, fields=fields, params=params)
        return
    assignments = ", ".join(f"{f} = %s{cast if f in json_fields else ''}" for f in fields)
    sql = (f"UPDATE {PressureBar._meta.db_table} SET {assignments} "
           "WHERE instrument_id = %s AND interval = %s AND bucket_start = %s")
    with connection.cursor() as cursor:
        cursor.executemany(sql, [[*values, instrument.pk, interval, bucket] for *values, bucket in params])


def _bars_fields_update_staged(*, instrument: Instrument, interval: str, fields: list[str], params: list[list]) -> None:
    table, meta = PressureBar._meta.db_table, PressureBar._meta
    columns = [*fields, "bucket_start"]
    stage = "bar_fields_stage"
    with transaction.atomic(), connection.cursor() as cursor:  # the stage lives and dies in this transaction
        cursor.execute(f"CREATE TEMP TABLE {stage} ("
                       + ", ".join(f"{c} {meta.get_field(c).db_type(connection)}" for c in columns) + ")")
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {stage} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in params:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {stage} VALUES ({', '.join(['%s'] * len(columns))})", params)
        assignments = ", ".join(f"{f} = {stage}.{f}" for f in fields)
        cursor.execute(f"UPDATE {table} SET {assignments} FROM {stage} WHERE {table}.instrument_id = %s"
                       f" AND {table}.interval = %s AND {table}.bucket_start = {stage}.bucket_start",
                       [instrument.pk, interval])
        cursor.execute(f"DROP TABLE {stage}")


# --- final bars ---------------------------------------------------------------------------------------------


def bars_finalize(*, instrument: Instrument, clock_ms: int | None = None) -> dict[str, list[PressureBar]]:
    """Make the bars that are due (bars_due_final) final: their index computed on their complete data, their
    regime from the calibration in force, then the episodes of those bars. Returns them by interval.

    Runs in the caller's transaction (the batch's); a bar is made final once (final=False filter).
    """
    due = list(PressureBar.objects.filter(bars_due_final(instrument=instrument, clock_ms=clock_ms))
               .values_list("interval", "bucket_start"))
    if not due:
        return {}
    out: dict[str, list[PressureBar]] = {}
    for interval in barmath.INTERVAL_MS:
        starts = sorted(dt_to_ms(b) for i, b in due if i == interval)
        if not starts:
            continue
        # The index once more on the complete bars (a coarse bar's index is computed only now, and
        # flows or a sibling market may have moved since a 1m bar's last trade).
        spi_refresh(instrument=instrument, interval=interval, start_ms=starts[0], end_ms=starts[-1])
        PressureBar.objects.filter(instrument=instrument, interval=interval, final=False,
                                   bucket_start__in=[ms_to_dt(b) for b in starts]).update(
            final=True, updated_at=timezone.now())
        episodes_refresh(instrument=instrument, interval=interval, start_ms=starts[0],
                         end_ms=starts[-1] + _interval_ms(interval))
        out[interval] = list(PressureBar.objects.filter(instrument=instrument, interval=interval,
                                                        bucket_start__in=[ms_to_dt(b) for b in starts])
                             .order_by("bucket_start"))
    # Cached ranges and headlines of this instrument are stale from the moment this commits.
    bars_version_bump_on_commit(instrument.pk)
    return out


# --- episodes -----------------------------------------------------------------------------------------------


def _episode_bars(interval: str, minutes: float) -> int:
    return max(1, round(minutes * 60_000 / _interval_ms(interval)))


def episodes_refresh(*, instrument: Instrument, interval: str = "1m", start_ms: int, end_ms: int) -> int:
    """Detect the episodes of the final bars touching [start, end) and store them (one row per start).

    Detection starts where the hysteresis state is known: at the start of the latest stored episode
    before `start` if it is still open, else at its end (a calm bar), else a day before `start`.
    """
    size = _interval_ms(interval)
    episodes = Episode.objects.filter(instrument=instrument, interval=interval)
    previous = episodes.filter(start__lt=ms_to_dt(start_ms)).order_by("-start").first()
    if previous is not None and (previous.end is None or dt_to_ms(previous.end) >= start_ms):
        since = previous.start
    elif previous is not None:
        since = previous.end
    else:
        since = ms_to_dt(start_ms - 1440 * 60_000)
    rows = list(PressureBar.objects.filter(instrument=instrument, interval=interval, final=True,
                                           bucket_start__gte=since, bucket_start__lt=ms_to_dt(end_ms))
                .order_by("bucket_start").values_list("bucket_start", "spi", "close", "spi_components"))
    if not rows:
        return 0
    index = [dt_to_ms(r[0]) for r in rows]
    spi_series = pd.Series([np.nan if r[1] is None else r[1] for r in rows], index=index, dtype=np.float64)
    thresholds = _thresholds_by_bar(instrument=instrument, interval=interval, buckets=index)
    close = pd.Series([np.nan if r[2] is None else float(r[2]) for r in rows], index=index, dtype=np.float64)
    contribution = pd.DataFrame([{k: v.get("contribution") for k, v in (r[3] or {}).items()} for r in rows],
                                index=index, dtype=np.float64)
    found = episode_math.detect_episodes(
        spi_series, contribution=contribution, close=close, enter=thresholds[:, 1], exit=thresholds[:, 0],
        confirm=_episode_bars(interval, settings.EPISODE_CONFIRM_MINUTES),
        persist=_episode_bars(interval, settings.EPISODE_END_MINUTES))
    wanted = {
        ms_to_dt(ep.start): {
            "confirmed_at": ms_to_dt(ep.confirmed), "peak_time": ms_to_dt(ep.peak_time), "peak_spi": ep.peak_spi,
            "end": ms_to_dt(ep.end) if ep.end is not None else None, "bars": ep.bars,
            "drawdown": 0.0 if np.isnan(ep.drawdown) else ep.drawdown, "source": ep.source,
            "shares": {k: float(v) for k, v in ep.shares.items()},
        }
        for ep in found
    }
    first = ms_to_dt(index[0] - index[0] % size)
    with transaction.atomic():
        stored = {e.start: e for e in episodes.filter(start__gte=first)}
        gone = [e.pk for start, e in stored.items() if start not in wanted]
        if gone:
            Episode.objects.filter(pk__in=gone).delete()
        # Written only where something changed: this runs on every final bar while an episode is open.
        for start, fields in wanted.items():
            current = stored.get(start)
            if current is None:
                Episode.objects.create(instrument=instrument, interval=interval, start=start, **fields)
            elif any(getattr(current, name) != value for name, value in fields.items()):
                Episode.objects.filter(pk=current.pk).update(**fields, updated_at=timezone.now())
    return len(found)
