"""Writes of derivatives readings: idempotent upserts keyed on the exchange's identity of a reading."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.conf import settings
from django.db import transaction

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
from apps.derivatives.readings import FundingPoint, MarkPricePoint, OpenInterestPoint
from apps.markets.models import Instrument
from apps.markets.services import instrument_ensure

logger = logging.getLogger(__name__)

# Far beyond any real reading: a funding rate of 100% per interval, DVOL of 1000%.
MAX_ABS_FUNDING = Decimal(1)
MAX_VOL = Decimal(1000)


@dataclass
class StoreResult:
    received: int = 0
    stored: int = 0
    rejected: Counter = field(default_factory=Counter)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def _dec(text, *, allow_negative: bool = False, allow_zero: bool = True) -> Decimal:
    if text is None:
        raise ValueError("missing")
    value = Decimal(str(text))
    if not value.is_finite():
        raise ValueError("not finite")
    if value < 0 and not allow_negative:
        raise ValueError("negative")
    if value == 0 and not allow_zero:
        raise ValueError("zero")
    return value


def _log_rejects(what: str, instrument, result: StoreResult) -> None:
    if result.rejected:
        logger.warning("rejected %d of %d %s for %s: %s", result.rejected_total, result.received, what,
                       instrument, dict(result.rejected))


def _readings_store(points: Sequence, *, check: Callable, build: Callable, model, upsert: dict, rejected_as: str,
                    logged_as: str, about) -> StoreResult:
    """The shape of every readings store: ``check`` each point (a ValueError or InvalidOperation rejects it,
    counted as "<rejected_as> <reason>"), ``build`` its row from what check returned, store the rows in one
    bulk_create with ``upsert`` (its conflict handling), and log the rejects."""
    result = StoreResult(received=len(points))
    objs = []
    for p in points:
        try:
            checked = check(p)
        except (ValueError, InvalidOperation) as exc:
            result.rejected[f"{rejected_as} {exc}"] += 1
            continue
        objs.append(build(p, checked))
    if objs:
        model.objects.bulk_create(objs, **upsert)
    result.stored = len(objs)
    _log_rejects(logged_as, about, result)
    return result


def _upsert_on(*unique: str, update: list[str]) -> dict:
    return {"update_conflicts": True, "unique_fields": list(unique), "update_fields": update}


def funding_rates_store(*, instrument: Instrument, points: Sequence) -> StoreResult:
    """Upsert funding readings (``FundingPoint``); negative rates are normal, NaN/absurd are not."""
    def check(p) -> Decimal:
        rate = _dec(p.rate, allow_negative=True)
        if abs(rate) > MAX_ABS_FUNDING:
            raise ValueError("absurd")
        return rate

    return _readings_store(
        points, check=check, model=FundingRate,
        upsert=_upsert_on("instrument", "time_ms", update=["rate", "next_funding_ms"]),
        build=lambda p, rate: FundingRate(instrument=instrument, time_ms=p.time_ms, rate=rate,
                                          next_funding_ms=p.next_funding_ms),
        rejected_as="funding rate", logged_as="funding rates", about=instrument)


def open_interest_store(*, instrument: Instrument, points: Sequence) -> StoreResult:
    def check(p) -> tuple[Decimal | None, Decimal | None]:
        base = _dec(p.oi_base) if p.oi_base is not None else None
        usd = _dec(p.oi_usd) if p.oi_usd is not None else None
        if base is None and usd is None:
            raise ValueError("missing")
        return base, usd

    return _readings_store(
        points, check=check, model=OpenInterest,
        upsert=_upsert_on("instrument", "time_ms", update=["oi_base", "oi_usd"]),
        build=lambda p, v: OpenInterest(instrument=instrument, time_ms=p.time_ms, oi_base=v[0], oi_usd=v[1]),
        rejected_as="open interest", logged_as="open interest readings", about=instrument)


def mark_prices_store(*, instrument: Instrument, points: Sequence) -> StoreResult:
    """Upsert mark and index prices (``MarkPricePoint``): positive prices only."""
    def check(p) -> tuple[Decimal, Decimal | None]:
        index = _dec(p.index_price, allow_zero=False) if p.index_price is not None else None
        return _dec(p.mark_price, allow_zero=False), index

    return _readings_store(
        points, check=check, model=MarkPrice,
        upsert=_upsert_on("instrument", "time_ms", update=["mark_price", "index_price"]),
        build=lambda p, v: MarkPrice(instrument=instrument, time_ms=p.time_ms, mark_price=v[0], index_price=v[1]),
        rejected_as="mark price", logged_as="mark prices", about=instrument)


def liquidations_store(*, instrument: Instrument, points: Iterable, sampled: bool) -> StoreResult:
    def check(p) -> tuple[Decimal, Decimal]:
        if p.position not in (Liquidation.Side.LONG, Liquidation.Side.SHORT):
            raise ValueError("side unknown")
        return _dec(p.price, allow_zero=False), _dec(p.qty, allow_zero=False)

    def build(p, checked) -> Liquidation:
        price, qty = checked
        return Liquidation(instrument=instrument, key=p.key, time_ms=p.time_ms, side=p.position, price=price,
                           qty=qty, notional=(price * qty).quantize(Decimal("1e-8")), sampled=sampled)

    return _readings_store(list(points), check=check, build=build, model=Liquidation,
                           upsert={"ignore_conflicts": True}, rejected_as="liquidation", logged_as="liquidations",
                           about=instrument)


def taker_ratios_store(*, instrument: Instrument, points: Sequence, period: str) -> StoreResult:
    return _readings_store(
        points, check=lambda p: (_dec(p.buy_vol), _dec(p.sell_vol), _dec(p.ratio)), model=TakerRatio,
        upsert=_upsert_on("instrument", "period", "time_ms", update=["buy_vol", "sell_vol", "ratio"]),
        build=lambda p, v: TakerRatio(instrument=instrument, time_ms=p.time_ms, period=period, buy_vol=v[0],
                                      sell_vol=v[1], ratio=v[2]),
        rejected_as="taker ratio", logged_as="taker ratios", about=instrument)


def vol_index_store(*, currency: str, points: Sequence) -> StoreResult:
    def check(p) -> Decimal:
        dvol = _dec(p.dvol, allow_zero=False)
        if dvol > MAX_VOL:
            raise ValueError("absurd")
        return dvol

    return _readings_store(
        points, check=check, model=VolIndex, upsert=_upsert_on("currency", "time_ms", update=["dvol"]),
        build=lambda p, dvol: VolIndex(currency=currency.upper(), time_ms=p.time_ms, dvol=dvol),
        rejected_as="dvol", logged_as="DVOL readings", about=currency)


def option_iv_store(*, currency: str, point) -> StoreResult:
    result = StoreResult(received=1)
    try:
        iv = _dec(point.atm_iv, allow_zero=False)
        if iv > MAX_VOL:
            raise ValueError("absurd")
    except (ValueError, InvalidOperation) as exc:
        result.rejected[f"atm iv {exc}"] += 1
        _log_rejects("ATM IV readings", currency, result)
        return result
    OptionIV.objects.update_or_create(
        currency=currency.upper(), time_ms=point.time_ms,
        defaults={"atm_iv": iv, "expiry_ms": point.expiry_ms,
                  "underlying_price": Decimal(point.underlying_price) if point.underlying_price else None},
    )
    result.stored = 1
    return result


# --- the recorded sample (data/derivatives-sample) --------------------------------------------------------------

SAMPLE_TICKERS = Path(settings.BASE_DIR) / "data" / "derivatives-sample" / "bybit_tickers_extracted.csv"
SAMPLE_SOURCE = "data/derivatives-sample/SOURCE.txt"


@dataclass
class SampleLoadResult:
    instrument: Instrument
    funding: int = 0
    open_interest: int = 0
    marks: int = 0
    changed: int = 0  # readings and sample rows written with new values


def bybit_ticker_points(
    *, path: Path, market: str, symbol: str,
) -> tuple[list[FundingPoint], list[OpenInterestPoint], list[MarkPricePoint]]:
    """Funding, open-interest and mark/index price readings of one symbol from Bybit v5 ``tickers`` messages (one
    CSV row each).

    A delta message carries only the fields that changed, so a reading is taken at each message that changed it,
    at that message's time; the fields it did not carry are carried forward from earlier messages.
    """
    funding: list[FundingPoint] = []
    oi: list[OpenInterestPoint] = []
    marks: list[MarkPricePoint] = []
    state: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["market"] != market or row["symbol"] != symbol:
                continue
            changed = {k: v for k, v in row.items() if v != ""}
            state.update(changed)
            t = int(row["ts_ms"])
            if "funding_rate" in changed:
                nxt = state.get("next_funding_time_ms")
                funding.append(FundingPoint(t, state["funding_rate"], int(nxt) if nxt else None))
            if "open_interest" in changed or "open_interest_value" in changed:
                oi.append(OpenInterestPoint(t, state.get("open_interest"), state.get("open_interest_value")))
            if ("mark_price" in changed or "index_price" in changed) and "mark_price" in state:
                marks.append(MarkPricePoint(t, state["mark_price"], state.get("index_price")))
    return funding, oi, marks


def _unchanged(model, instrument: Instrument, points: Sequence, fields: dict) -> bool:
    """True when exactly these readings (times and values) are stored already."""
    rows = model.objects.filter(instrument=instrument, time_ms__in=[p.time_ms for p in points])
    stored = {t: tuple(v) for t, *v in rows.values_list("time_ms", *fields)}
    return len(stored) == len(points) and all(
        stored[p.time_ms] == tuple(None if getattr(p, a) is None else Decimal(getattr(p, a)) for a in fields.values())
        for p in points)


def derivatives_sample_load(*, path: Path = SAMPLE_TICKERS) -> SampleLoadResult:
    """Store the recorded Bybit BTCUSDT perpetual funding, open interest and mark/index prices at their real times,
    as a sample.

    Re-running changes nothing: readings are keyed by time and written only when they differ.
    """
    funding, oi, marks = bybit_ticker_points(path=path, market="linear", symbol="BTCUSDT")
    if not funding and not oi and not marks:
        raise ValueError(f"{path}: no linear BTCUSDT ticker readings")
    instrument = instrument_ensure(exchange_slug="bybit", exchange_name="Bybit", market="linear", symbol="BTCUSDT",
                                   base="BTC", quote="USDT", kind="perp")
    result = SampleLoadResult(instrument, funding=len(funding), open_interest=len(oi), marks=len(marks))
    times = [p.time_ms for p in (*funding, *oi, *marks)]
    with transaction.atomic():
        if not _unchanged(FundingRate, instrument, funding, {"rate": "rate"}):
            result.changed += funding_rates_store(instrument=instrument, points=funding).stored
        if not _unchanged(OpenInterest, instrument, oi, {"oi_base": "oi_base", "oi_usd": "oi_usd"}):
            result.changed += open_interest_store(instrument=instrument, points=oi).stored
        if not _unchanged(MarkPrice, instrument, marks, {"mark_price": "mark_price", "index_price": "index_price"}):
            result.changed += mark_prices_store(instrument=instrument, points=marks).stored
        values = {"venue": "Bybit", "start_ms": min(times), "end_ms": max(times), "funding_readings": len(funding),
                  "oi_readings": len(oi), "source": SAMPLE_SOURCE}
        sample = RecordedSample.objects.filter(instrument=instrument).first()
        if sample is None or any(getattr(sample, k) != v for k, v in values.items()):
            RecordedSample.objects.update_or_create(instrument=instrument, defaults=values)
            result.changed += 1
    return result
