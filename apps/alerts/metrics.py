"""What an alert rule can watch: one registry, so forms, evaluation, rule sentences, emails and toasts agree.

A metric is stored as the data holds it (a taker sell ratio is a fraction 0-1) and shown as the pages show it
(a percentage): `scale` converts, and ranges and defaults are in the shown unit, so a rule reads as the charts do.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from apps.pressure.indicators.index import LABELS as SPI_COMPONENT_LABELS
from apps.pressure.indicators.index import REGIMES

# A regime rule compares the rank of the final bar's regime (REGIMES: calm, elevated, high, extreme), so "high"
# means the instrument's own calibrated high threshold (regimes are percentiles of its final index values).
SIGMA, NO_VALUE = "\u03c3", "\u2013"  # standard deviations; the pages' dash for "no value"
REGIME_LEVELS = (("elevated", "elevated"), ("high", "high"), ("extreme", "extreme"))


@dataclass(frozen=True)
class Metric:
    key: str
    label: str  # as a title: "Taker sell ratio"
    noun: str  # inside a sentence: "taker sell ratio"
    unit: str  # the shown unit: "%", "bps", "USD", sigma or "" (index points, a plain number)
    glossary: str
    bar_field: str | None  # read from the latest PressureBar; None = needs a data source not collected yet
    scope: str = "market"  # market (instrument/watchlist) or flows (asset)
    scale: int = 1  # shown = stored * scale
    minimum: float | None = None  # the shown range, None = open
    maximum: float | None = None
    default: float | None = None  # a sensible first threshold, shown unit
    default_comparator: str = "gte"
    step: str = "any"
    decimals: int = 2  # at most, when a value is shown
    needs_threshold: bool = True  # False: the rule fires on an event (episode start), no threshold to pick
    levels: bool = False  # the threshold is one of REGIME_LEVELS (stored as its rank)
    perp_only: bool = False  # only perpetual futures have it
    explain: str = ""

    @property
    def available(self) -> bool:
        return self.bar_field is not None

    @property
    def range_text(self) -> str:
        lo = "" if self.minimum is None else format_number(self.minimum, self)
        hi = "" if self.maximum is None else format_number(self.maximum, self)
        if lo and hi:
            return f"between {lo} and {hi}"
        return f"{lo} or more" if lo else (f"at most {hi}" if hi else "any number")


METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("spi", "Selling Pressure Index", "SPI", "", "selling-pressure-index", "spi", minimum=0, maximum=100,
           default=70, step="1", decimals=1, explain="0-100; the regimes are calibrated per instrument."),
    Metric("spi_regime", "Selling Pressure Index regime", "SPI regime", "", "selling-pressure-index", "regime",
           levels=True, explain="Calm, elevated, high or extreme, at the instrument's own calibrated thresholds."),
    Metric("taker_sell_ratio", "Taker sell ratio", "taker sell ratio", "%", "taker-sell-ratio", "taker_sell_ratio",
           scale=100, minimum=0, maximum=100, default=65, step="0.1", decimals=1,
           explain="Share of the bar's traded volume that sellers initiated; 50% is balanced."),
    Metric("imbalance_0_5pct", "Book imbalance ±0.5%", "book imbalance within ±0.5%", "", "order-book-imbalance",
           "imbalance_0_5pct", minimum=-1, maximum=1, default=-0.3, default_comparator="lte", step="0.01",
           decimals=3, explain="-1 (only asks near the price) to +1 (only bids); below 0 leans to selling."),
    Metric("spread_bps", "Bid-ask spread", "bid-ask spread", "bps", "bid-ask-spread", "spread_bps", minimum=0,
           maximum=10_000, default=5, step="0.1", decimals=3, explain="In basis points of the mid price."),
    Metric("long_liquidations", "Long liquidations", "long liquidations", "USD", "liquidation", "liq_long_usd",
           minimum=0, default=100_000, step="1000", decimals=0, perp_only=True,
           explain="Per bar; a lower bound where the exchange samples them."),
    Metric("funding_rate", "Funding rate", "funding rate", "%", "funding-rate", "funding_rate", scale=100,
           minimum=-10, maximum=10, default=0.05, step="0.001", decimals=4, perp_only=True,
           explain="Per funding period, as the derivatives panel shows it."),
    Metric("open_interest_change", "Open interest change", "open interest change", "%", "open-interest",
           "oi_change_pct", minimum=-100, maximum=1000, default=-2, default_comparator="lte", step="0.1",
           decimals=2, perp_only=True, explain="Per bar."),
    Metric("netflow_z", "Exchange netflow z-score", "exchange netflow z-score", SIGMA, "netflow-z-score", "netflow_z",
           scope="flows", minimum=-50, maximum=50, default=2, step="0.1", decimals=2,
           explain="Standard deviations from the asset's trailing hourly netflow; above 0 more coins flow in."),
    Metric("whale_ratio", "Exchange whale ratio", "exchange whale ratio", "%", "exchange-whale-ratio", "whale_ratio",
           scope="flows", scale=100, minimum=0, maximum=100, default=85, step="1", decimals=1,
           explain="Share of the hour's inflow carried by its ten largest transactions."),
    Metric("drop_risk", "Drop risk (the forecast's probability of the configured drop within its horizon)",
           "drop risk", "%", "drop-risk", "drop_risk", scale=100, minimum=0, maximum=100, default=25, step="1",
           decimals=1, explain="The forecast's probability of the configured drop within its horizon."),
    Metric("episode_start", "Selling-pressure episode start", "selling-pressure episode", "",
           "selling-pressure-episode", "episode_start", needs_threshold=False,
           explain="Fires once when an episode is confirmed (the index stayed in its high regime long enough)."),
)}

DERIVATIVES = tuple(k for k, m in METRICS.items() if m.perp_only)
# An episode-start rule compares "an episode was confirmed on this bar" (1, else 0) with this fixed threshold.
EVENT_THRESHOLD = 1.0


def metric_choices() -> list[tuple[str, str]]:
    """The model field's choices (a callable, so a new metric needs no migration)."""
    return [(k, m.label) for k, m in METRICS.items()]


def to_stored(value: Decimal | float, metric: Metric) -> float:
    """A threshold as typed (shown unit) to the stored unit: 65 (%) -> 0.65, exactly as typed."""
    return float(Decimal(str(value)) / metric.scale)


def to_shown(value: float, metric: Metric) -> Decimal:
    """A stored value in the shown unit: 0.65 -> 65, without binary noise (0.65 * 100 is 65.00000000000001)."""
    shown = (Decimal(repr(float(value))) * metric.scale).normalize()
    return shown.quantize(Decimal(1)) if shown == shown.to_integral_value() else shown  # 70, not 7E+1


def format_number(shown: float | Decimal, metric: Metric) -> str:
    """A number already in the shown unit, with its unit: "65%", "5 bps", "100,000 USD", "-0.3"."""
    try:
        number = Decimal(str(shown)).quantize(Decimal(1).scaleb(-metric.decimals))
    except InvalidOperation:
        return str(shown)
    text = f"{number:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text == "-0":
        text = "0"
    if not metric.unit:
        return text
    return f"{text}%" if metric.unit == "%" else f"{text} {metric.unit}"


def format_value(stored: float | None, metric: Metric) -> str:
    """A stored value as the pages show it: 0.723 (taker sell ratio) -> "72.3%"; a level by its name."""
    if stored is None:
        return NO_VALUE
    if metric.levels:
        rank = round(stored)
        return REGIMES[rank] if 0 <= rank < len(REGIMES) else str(stored)
    if not metric.needs_threshold:
        return "episode confirmed" if stored >= EVENT_THRESHOLD else "no episode"
    return format_number(to_shown(stored, metric), metric)


def spi_components_text(components: dict | None) -> list[tuple[str, float]]:
    """An event's index components as (human label, contribution), largest first: never the code names."""
    rows = [(SPI_COMPONENT_LABELS.get(k, k.replace("_", " ")), float(c.get("contribution") or 0))
            for k, c in (components or {}).items() if isinstance(c, dict)]
    return sorted(rows, key=lambda r: -abs(r[1]))


def metric_value(metric_key: str, bar) -> float | None:
    metric = METRICS[metric_key]
    if bar is None or metric.bar_field is None:
        return None
    if metric.key in DERIVATIVES:
        from apps.derivatives.selectors import derivatives_bars
        from apps.pressure.models import INTERVALS

        rows = derivatives_bars(instrument=bar.instrument, interval=bar.interval, start=bar.bucket_start,
                                end=bar.bucket_start + INTERVALS[bar.interval])
        value = rows[-1].get(metric.bar_field) if rows else None
        return None if value is None else float(value)
    if metric.key == "episode_start":
        from apps.pressure.models import Episode

        confirmed = Episode.objects.filter(instrument_id=bar.instrument_id, interval=bar.interval,
                                           confirmed_at=bar.bucket_start)
        return 1.0 if confirmed.exists() else 0.0
    value = getattr(bar, metric.bar_field, None)
    if metric.levels:
        return float(REGIMES.index(value)) if value in REGIMES else None
    return None if value is None else float(value)
