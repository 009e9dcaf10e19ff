"""What an alert rule can watch: one registry, so forms, evaluation, emails and the glossary agree."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    glossary: str
    bar_field: str | None  # read from the latest PressureBar; None = needs a data source not collected yet
    scope: str = "market"  # market (instrument/watchlist) or flows (asset)

    @property
    def available(self) -> bool:
        return self.bar_field is not None


METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("spi", "Selling Pressure Index", "", "selling-pressure-index", "spi"),
    Metric("taker_sell_ratio", "Taker sell ratio", "ratio 0-1", "taker-sell-ratio", "taker_sell_ratio"),
    Metric("imbalance_0_5pct", "Book imbalance ±0.5%", "-1..+1", "order-book-imbalance", "imbalance_0_5pct"),
    Metric("spread_bps", "Bid-ask spread", "bps", "bid-ask-spread", "spread_bps"),
    Metric("long_liquidations", "Long liquidations", "USD per bar (lower bound where sampled)", "liquidation",
           "liq_long_usd"),
    Metric("funding_rate", "Funding rate", "per funding period, fraction", "funding-rate", "funding_rate"),
    Metric("open_interest_change", "Open interest change", "% per bar", "open-interest", "oi_change_pct"),
    Metric("netflow_z", "Exchange netflow z-score", "z", "netflow-z-score", "netflow_z", scope="flows"),
    Metric("whale_ratio", "Exchange whale ratio", "ratio 0-1", "exchange-whale-ratio", "whale_ratio", scope="flows"),
    Metric("drop_risk", "Drop risk (the forecast's probability of the configured drop within its horizon)",
           "probability 0-1", "drop-risk", "drop_risk"),
    Metric("episode_start", "Selling-pressure episode start", "1 = an episode was confirmed on this bar",
           "selling-pressure-episode", "episode_start"),
)}


DERIVATIVES = ("long_liquidations", "funding_rate", "open_interest_change")


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
    return None if value is None else float(value)
