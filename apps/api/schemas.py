"""What /api/v1 accepts and answers, declared once: ninja validates requests with these and writes the
OpenAPI document from them. Every rejected parameter becomes a 400 whose message names it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from ninja import Schema
from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from apps.pressure.models import INTERVALS
from pressureweb.lib.params import BadRequest, parse_time, time_window

MAX_BARS = 20_000
DEFAULT_SPAN = timedelta(hours=1)


def one_of(name: str, choices: tuple[str, ...]) -> BeforeValidator:
    """Checks a parameter against its declared choices, with the message the API has always given."""

    def check(value):
        if value not in choices:
            raise BadRequest(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    return BeforeValidator(check)


def time_param(name: str, description: str):
    """An optional ISO 8601 time parameter, read by parse_time (ASCII digits, years 1-9999 in UTC)."""
    # Absent means None; a query string has no null, so the document shows a plain date-time string.
    return Annotated[datetime | None, BeforeValidator(lambda value: parse_time(value, name)),
                     WithJsonSchema({"type": "string", "format": "date-time", "description": description})]


# --- parameters ----------------------------------------------------------------------------------------------

Format = Annotated[Literal["json", "csv"], one_of("format", ("json", "csv")),
                   Field(description="json, or csv for a download")]
Start = time_param("start", "ISO 8601, UTC when no zone is given")
End = time_param("end", "ISO 8601, UTC when no zone is given; default now")
Interval = Annotated[Literal[tuple(INTERVALS)], one_of("interval", tuple(INTERVALS)),
                     Field(description="Bar length")]
_NAME = {"min_length": 1, "max_length": 64}
Exchange = Annotated[str, Field(**_NAME, examples=["binance-replay"], description="Exchange slug")]
Market = Annotated[str, Field(**_NAME, examples=["spot"], description="spot, or a derivatives market")]
Symbol = Annotated[str, Field(**_NAME, examples=["BTCUSDT"], description="Exchange symbol (any case)")]
OptionalName = Annotated[str | None, Field(max_length=64), WithJsonSchema({"type": "string", "maxLength": 64})]


class BarQuery(Schema):
    """One instrument's bars over [start, end): start defaults to end minus 1 hour, at most MAX_BARS bars."""

    exchange: Exchange
    market: Market
    symbol: Symbol
    interval: Interval = "1m"
    start: Start = None
    end: End = None
    format: Format = "json"

    @model_validator(mode="after")
    def _window(self):
        self.start, self.end = time_window(start=self.start, end=self.end, default_span=DEFAULT_SPAN)
        if (self.end - self.start) / INTERVALS[self.interval] > MAX_BARS:
            raise BadRequest(f"range too long: at most {MAX_BARS:,} bars per request; use a coarser interval")
        return self


class PressureQuery(BarQuery):
    """The index of one instrument's bars of any interval (also history imported only at 5m or 1h)."""


class EpisodeQuery(Schema):
    """Episodes, newest first: of one instrument (all three given) or all; overlapping [start, end) if given."""

    exchange: OptionalName = None
    market: OptionalName = None
    symbol: OptionalName = None
    interval: Annotated[Literal[tuple(INTERVALS)] | None, one_of("interval", tuple(INTERVALS)),
                        Field(description="Only episodes found on these bars (default: every interval)")] = None
    start: Start = None
    end: End = None
    format: Format = "json"

    @model_validator(mode="after")
    def _together(self):
        given = [bool(v) for v in (self.exchange, self.market, self.symbol)]
        if any(given) and not all(given):
            raise BadRequest("give exchange, market and symbol together, or none of them")
        if (self.start is None) != (self.end is None):
            raise BadRequest("give start and end together")
        if self.start is not None and self.start >= self.end:
            raise BadRequest("start must be before end")
        return self

    @property
    def instrument_given(self) -> bool:
        return bool(self.exchange)


# --- responses -----------------------------------------------------------------------------------------------

DecimalText = Annotated[str | None, Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$", description="Exact decimal as text")]
Ratio = Annotated[float | None, Field(description="0-1, null when undefined")]
Float = float | None


class Error(Schema):
    error: str = Field(description="What was wrong, in one sentence")


class Instrument(Schema):
    exchange: str
    market: str
    symbol: str
    base: str
    quote: str
    kind: str
    source: Literal["replay", "live"]


class Bar(Schema):
    """A bar: prices and volumes exact, taker_sell_ratio and book imbalances as floats."""

    bucket_start: datetime
    open: DecimalText
    high: DecimalText
    low: DecimalText
    close: DecimalText
    vwap: DecimalText
    trades: int = Field(ge=0)
    taker_buy_base: DecimalText
    taker_sell_base: DecimalText
    taker_buy_quote: DecimalText
    taker_sell_quote: DecimalText
    delta_base: DecimalText
    cvd_base: DecimalText = Field(description="Sum of delta_base from the first bar of the range")
    taker_sell_ratio: Ratio
    spread_bps: Float
    imbalance_0_1pct: Float
    imbalance_0_5pct: Float
    imbalance_1pct: Float
    imbalance_2pct: Float


class Bars(Schema):
    instrument: Instrument
    interval: Literal[tuple(INTERVALS)]
    start: datetime
    end: datetime
    bars: list[Bar] = Field(description="Oldest first")


class Component(Schema):
    value: Float
    z: Float
    contribution: Float


class PressureRow(Schema):
    bucket_start: datetime
    final: bool = Field(description="false for the forming bar: its values are provisional, and regimes, episodes "
                                    "and alerts act on final bars only")
    spi: float | None = Field(ge=0, le=100, description="0-100; null until the trailing window is long enough")
    regime: Literal["calm", "elevated", "high", "extreme"] | None = Field(
        description="against the instrument's own calibrated thresholds (percentiles of its last 30 days)")
    drop_risk: float | None = Field(ge=0, le=1, description="probability of a drop of at least the drop-risk "
                                                            "target within its horizon; final bars with a model only")
    components: dict[str, Component]
    missing: list[str] = Field(description="Components without data (weights renormalised over the rest)")


class Pressure(Schema):
    instrument: Instrument
    interval: Literal[tuple(INTERVALS)]
    fields: list[str]
    pressure: list[PressureRow] = Field(description="Oldest first")


class Episode(Schema):
    exchange: str
    market: str
    symbol: str
    interval: Literal[tuple(INTERVALS)] = Field(description="The bars the episode was found on")
    start: datetime
    confirmed_at: datetime | None = Field(description="The final bar that confirmed it (alerts fire then)")
    peak_time: datetime
    peak_spi: float
    end: datetime | None = Field(description="null while the episode is still going on")
    bars: int = Field(ge=0)
    drawdown: float
    source: str
    shares: dict[str, float]


class Outcome(Schema):
    count: int = Field(ge=0)
    duration_median: float = Field(description="minutes")
    duration_p90: float = Field(description="minutes")
    drawdown_median: float = Field(description="fraction of the price")
    drawdown_p90: float = Field(description="fraction of the price")
    differs: bool | None = Field(description="whether these episodes' duration or drawdown differ from the other "
                                             "labels' (Mann-Whitney U, 5%); null with fewer than 5 on either side")


class Episodes(Schema):
    episodes: list[Episode] = Field(description="Newest first, at most 1,000")
    outcomes: dict[str, Outcome] | None = Field(
        default=None, description="With an instrument: how its ended episodes went, per source label")


class TrackRecordQuery(Schema):
    """How the index, its regimes, the drop-risk forecast and the baselines foresaw drops on one instrument's
    final bars starting in [start, end) (default: its whole history)."""

    exchange: Exchange
    market: Market
    symbol: Symbol
    interval: Interval = "5m"
    horizon_minutes: Annotated[int, Field(ge=1, le=1439, description="H: the drop must happen within these minutes "
                                                                     "after the bar (5, 15 and 60 offered)")] = 15
    drop_pct: Annotated[float, Field(gt=0, le=50, description="X: the drop, in percent of the bar's close")] = 1.0
    start: Start = None
    end: End = None
    format: Format = "json"

    @model_validator(mode="after")
    def _window(self):
        if (self.start is None) != (self.end is None):
            raise BadRequest("give start and end together, or neither for the whole history")
        if self.start is not None and self.start >= self.end:
            raise BadRequest("start must be before end")
        if (self.horizon_minutes * 60_000) % int(INTERVALS[self.interval].total_seconds() * 1000):
            raise BadRequest(f"horizon_minutes must be a whole number of {self.interval} bars")
        return self


class SignalRecord(Schema):
    auc: float | None = Field(description="Area under the ROC curve, ties counting half; 0.5 = no better than "
                                          "chance")
    brier: float | None = Field(default=None, description="Probabilistic signals: mean squared error")
    brier_skill: float | None = Field(default=None, description="1 - Brier / Brier of always predicting the base "
                                                                "rate")
    precision: float | None = Field(default=None, description="Alerting signals: events among alert bars")
    recall: float | None = Field(default=None, description="Alerting signals: alert bars among event bars")
    lift: float | None = Field(default=None, description="precision / base rate")
    lead_time_minutes_median: float | None = Field(default=None, description="From the alert to the drop")
    false_alarms_per_day: float | None = Field(default=None, description="Alert runs not followed by a drop")


class TrackRecordOut(Schema):
    instrument: Instrument
    interval: Literal[tuple(INTERVALS)]
    horizon_minutes: int
    drop_pct: float
    bars: int = Field(description="Bars starting in [start, end) with their whole horizon after them")
    events: int = Field(description="Of those, bars followed by a drop of at least drop_pct within horizon_minutes")
    base_rate: float | None = Field(description="events / bars")
    history_days: float = Field(description="Days of final bars the evaluation could read")
    signals: dict[str, SignalRecord] = Field(description="spi, drop_risk, regime_elevated, regime_high, "
                                                         "regime_extreme, baseline_taker_sell_ratio, "
                                                         "baseline_volatility, baseline_return")
