"""Reads of derivatives context, aligned to the PressureBar buckets of an instrument.

A bucket starts at ``t - t % interval`` in UTC, exactly like PressureBar. Levels (funding, open
interest, DVOL, ATM IV) are the last reading in the bucket, carried forward from the latest
earlier reading when a bucket has none; flows (liquidations, exchange taker volume) are sums
over the bucket. Changes are against the previous bucket.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime
from decimal import Decimal
from itertools import pairwise

from apps.derivatives.models import (
    FundingRate,
    Liquidation,
    MarkPrice,
    OpenInterest,
    OptionIV,
    RecordedSample,
    TakerRatio,
    VolIndex,
)
from apps.markets.models import Instrument
from apps.pressure.models import INTERVALS, PressureBar
from pressureweb.lib.times import dt_to_ms, iso_z, ms_to_dt

FIELDS = (
    "funding_rate", "funding_change", "oi_base", "oi_usd", "oi_change_base", "oi_change_usd", "oi_change_pct",
    "liq_long_usd", "liq_short_usd", "liq_long_base", "liq_short_base", "liq_count", "liq_lower_bound",
    "exch_taker_buy_base", "exch_taker_sell_base", "exch_taker_sell_ratio", "taker_sell_ratio", "close",
    "dvol", "dvol_change", "atm_iv", "mark_price", "index_price", "basis_bps",
)


def _levels(rows: list[tuple], buckets: list[int], size: int) -> list:
    """Last value at or before each bucket's end; rows are (time_ms, value) ascending."""
    times = [r[0] for r in rows]
    out = []
    for b in buckets:
        i = bisect_right(times, b + size - 1)
        out.append(rows[i - 1][1] if i else None)
    return out


def _change(values: list) -> list:
    out: list = [None]
    for prev, cur in pairwise(values):
        out.append(cur - prev if cur is not None and prev is not None else None)
    return out


def _f(value) -> float | None:
    return None if value is None else float(value)


def _level_rows(model, value_fields: tuple[str, ...], *, lo: int, hi: int, **flt) -> list[tuple]:
    """(time_ms, *values) ascending: the last reading before ``lo`` (carried forward) and those in [lo, hi)."""
    before = (model.objects.filter(time_ms__lt=lo, **flt).order_by("-time_ms")
              .values_list("time_ms", *value_fields)[:1])
    inside = (model.objects.filter(time_ms__gte=lo, time_ms__lt=hi, **flt).order_by("time_ms")
              .values_list("time_ms", *value_fields))
    return list(before) + list(inside)


def _liquidations_by_bucket(*, instrument: Instrument, lo: int, hi: int, size: int) -> dict[int, dict]:
    liq: dict[int, dict] = {}
    for t, side, qty, notional, sampled in (
        Liquidation.objects.filter(instrument=instrument, time_ms__gte=lo, time_ms__lt=hi)
        .values_list("time_ms", "side", "qty", "notional", "sampled")
    ):
        b = liq.setdefault(t - t % size, {"long_usd": Decimal(0), "short_usd": Decimal(0), "long_base": Decimal(0),
                                          "short_base": Decimal(0), "n": 0, "sampled": False})
        b[f"{side}_usd"] += notional
        b[f"{side}_base"] += qty
        b["n"] += 1
        b["sampled"] = b["sampled"] or sampled
    return liq


def _taker_by_bucket(*, instrument: Instrument, lo: int, hi: int, size: int) -> dict[int, list[Decimal]]:
    taker: dict[int, list[Decimal]] = {}
    for t, buy, sell in (TakerRatio.objects.filter(instrument=instrument, time_ms__gte=lo, time_ms__lt=hi)
                         .values_list("time_ms", "buy_vol", "sell_vol")):
        acc = taker.setdefault(t - t % size, [Decimal(0), Decimal(0)])
        acc[0] += buy
        acc[1] += sell
    return taker


def _sample_ended(rows: list[tuple], end_ms: int | None, size: int) -> list[tuple]:
    """A recorded sample's readings are levels of its seconds only: no bucket after the one it ends in carries
    them forward (a None reading at that bucket's end stops the carry until a new reading arrives)."""
    if end_ms is None:
        return rows
    return sorted([*rows, (end_ms - end_ms % size + size, None)], key=lambda r: r[0])


def _levels_by_bucket(*, instrument: Instrument, buckets: list[int], size: int, hi: int) -> dict[str, list]:
    lo, currency = buckets[0], instrument.base.upper()
    sample_end = RecordedSample.objects.filter(instrument=instrument).values_list("end_ms", flat=True).first()
    oi_rows = _level_rows(OpenInterest, ("oi_base", "oi_usd"), lo=lo, hi=hi, instrument=instrument)
    funding = _level_rows(FundingRate, ("rate",), lo=lo, hi=hi, instrument=instrument)
    oi_base = [(t, b) for t, b, _ in oi_rows if b is not None]
    oi_usd = [(t, u) for t, _, u in oi_rows if u is not None]
    return {
        "funding": _levels(_sample_ended(funding, sample_end, size), buckets, size),
        "oi_base": _levels(_sample_ended(oi_base, sample_end, size), buckets, size),
        "oi_usd": _levels(_sample_ended(oi_usd, sample_end, size), buckets, size),
        "dvol": _levels(_level_rows(VolIndex, ("dvol",), lo=lo, hi=hi, currency=currency), buckets, size),
        "atm": _levels(_level_rows(OptionIV, ("atm_iv",), lo=lo, hi=hi, currency=currency), buckets, size),
        **_mark_levels(_level_rows(MarkPrice, ("mark_price", "index_price"), lo=lo, hi=hi, instrument=instrument),
                       buckets, size, sample_end=sample_end),
    }


def _mark_levels(rows: list[tuple], times: list[int], size: int, *, sample_end: int | None = None) -> dict[str, list]:
    """Mark and index price levels at `times`, and the basis between them in basis points."""
    marks = _levels(_sample_ended([(t, m) for t, m, _ in rows], sample_end, size), times, size)
    index = _levels(_sample_ended([(t, i) for t, _, i in rows if i is not None], sample_end, size), times, size)
    basis = [(m - i) / i * 10_000 if m is not None and i else None for m, i in zip(marks, index, strict=True)]
    return {"mark": marks, "index": index, "basis": basis}


def derivatives_bars(*, instrument: Instrument, interval: str, start: datetime, end: datetime) -> list[dict]:
    """One row per bucket in [start, end) with every derivatives field (None where unknown)."""
    size = int(INTERVALS[interval].total_seconds() * 1000)
    lo, hi = dt_to_ms(start), dt_to_ms(end)
    lo -= lo % size
    buckets = list(range(lo, hi, size))
    if not buckets:
        return []
    lv = _levels_by_bucket(instrument=instrument, buckets=buckets, size=size, hi=hi)
    liq = _liquidations_by_bucket(instrument=instrument, lo=lo, hi=hi, size=size)
    taker = _taker_by_bucket(instrument=instrument, lo=lo, hi=hi, size=size)
    bars = PressureBar.objects.filter(instrument=instrument, interval=interval, bucket_start__gte=ms_to_dt(lo),
                                      bucket_start__lt=ms_to_dt(hi))
    ours = {dt_to_ms(bucket): (ratio, close)
            for bucket, ratio, close in bars.values_list("bucket_start", "taker_sell_ratio", "close")}
    funding, oi_base, oi_usd, dvol = lv["funding"], lv["oi_base"], lv["oi_usd"], lv["dvol"]
    funding_change, oi_change_base, oi_change_usd, dvol_change = (
        _change(funding), _change(oi_base), _change(oi_usd), _change(dvol))
    rows = []
    for i, b in enumerate(buckets):
        prev_oi = oi_base[i - 1] if i else None
        pct = (oi_change_base[i] / prev_oi * 100) if oi_change_base[i] is not None and prev_oi else None
        lb = liq.get(b)
        tk = taker.get(b)
        ratio, close = ours.get(b, (None, None))
        rows.append({
            "bucket_start": iso_z(ms_to_dt(b)),
            "funding_rate": _f(funding[i]), "funding_change": _f(funding_change[i]),
            "oi_base": _f(oi_base[i]), "oi_usd": _f(oi_usd[i]),
            "oi_change_base": _f(oi_change_base[i]), "oi_change_usd": _f(oi_change_usd[i]), "oi_change_pct": _f(pct),
            "liq_long_usd": _f(lb["long_usd"]) if lb else 0.0, "liq_short_usd": _f(lb["short_usd"]) if lb else 0.0,
            "liq_long_base": _f(lb["long_base"]) if lb else 0.0,
            "liq_short_base": _f(lb["short_base"]) if lb else 0.0,
            "liq_count": lb["n"] if lb else 0, "liq_lower_bound": bool(lb and lb["sampled"]),
            "exch_taker_buy_base": _f(tk[0]) if tk else None, "exch_taker_sell_base": _f(tk[1]) if tk else None,
            "exch_taker_sell_ratio": _f(tk[1] / (tk[0] + tk[1])) if tk and (tk[0] + tk[1]) else None,
            "taker_sell_ratio": ratio, "close": _f(close),
            "dvol": _f(dvol[i]), "dvol_change": _f(dvol_change[i]), "atm_iv": _f(lv["atm"][i]),
            "mark_price": _f(lv["mark"][i]), "index_price": _f(lv["index"][i]), "basis_bps": _f(lv["basis"][i]),
        })
    return rows


def derivatives_latest(*, instrument: Instrument) -> dict:
    """Newest reading of each kind, for the panel's headline numbers."""
    currency = instrument.base.upper()
    funding = FundingRate.objects.filter(instrument=instrument).order_by("-time_ms").first()
    oi = OpenInterest.objects.filter(instrument=instrument).order_by("-time_ms").first()
    dvol = VolIndex.objects.filter(currency=currency).order_by("-time_ms").first()
    iv = OptionIV.objects.filter(currency=currency).order_by("-time_ms").first()
    mark = MarkPrice.objects.filter(instrument=instrument).order_by("-time_ms").first()
    basis = ((mark.mark_price - mark.index_price) / mark.index_price * 10_000
             if mark is not None and mark.index_price else None)
    sampled = Liquidation.objects.filter(instrument=instrument, sampled=True).exists()
    return {"funding": funding, "oi": oi, "dvol": dvol, "atm_iv": iv, "mark": mark, "basis_bps": basis,
            "liquidations_sampled": sampled,
            "has_any": any(x is not None for x in (funding, oi, dvol, iv, mark))
            or Liquidation.objects.filter(instrument=instrument).exists()}


def derivatives_sample(*, instrument: Instrument) -> RecordedSample | None:
    """The instrument's recorded sample, when one was loaded."""
    return RecordedSample.objects.filter(instrument=instrument).first()


def derivatives_samples() -> list[RecordedSample]:
    return list(RecordedSample.objects.select_related("instrument__exchange").order_by("instrument__symbol"))


def derivatives_readings(*, instrument: Instrument, start_ms: int, end_ms: int) -> list[dict]:
    """Funding, open interest and mark/index prices at each reading's own time in [start_ms, end_ms] (no buckets),
    each level carried forward from the previous reading: a sample of seconds is drawn as it was recorded, never
    stretched."""
    window = {"instrument": instrument, "time_ms__gte": start_ms, "time_ms__lte": end_ms}
    funding = list(FundingRate.objects.filter(**window).order_by("time_ms").values_list("time_ms", "rate"))
    oi = list(OpenInterest.objects.filter(**window).order_by("time_ms").values_list("time_ms", "oi_base", "oi_usd"))
    marks = list(MarkPrice.objects.filter(**window).order_by("time_ms")
                 .values_list("time_ms", "mark_price", "index_price"))
    times = sorted({t for t, *_ in funding} | {t for t, *_ in oi} | {t for t, *_ in marks})
    size = 1  # a level "in the bucket" of one millisecond: the last reading at or before it
    rates = _levels(funding, times, size)
    bases = _levels([(t, b) for t, b, _ in oi if b is not None], times, size)
    usds = _levels([(t, u) for t, _, u in oi if u is not None], times, size)
    prices = _mark_levels(marks, times, size)
    return [{**dict.fromkeys(FIELDS), "bucket_start": iso_z(ms_to_dt(t)), "funding_rate": _f(rates[i]),
             "oi_base": _f(bases[i]), "oi_usd": _f(usds[i]), "mark_price": _f(prices["mark"][i]),
             "index_price": _f(prices["index"][i]), "basis_bps": _f(prices["basis"][i])}
            for i, t in enumerate(times)]
