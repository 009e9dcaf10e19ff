"""The index's one-line explanation, against hand-written expectations."""

from apps.pressure.models import PressureBar
from apps.pressure.selectors import spi_explain


def _bar(spi, regime, contributions):
    components = {k: {"value": 1.0, "z": 1.0, "contribution": c} for k, c in contributions.items()}
    return PressureBar(spi=spi, regime=regime, spi_components=components)


def test_the_explanation_names_the_top_three_positive_shares():
    bar = _bar(78.4, "high", {"taker_sell_ratio": 0.9, "long_liquidations": 0.6, "netflow_z": 0.45,
                              "vpin": 0.05, "spread_widening": -0.3, "imbalance": 0.0})
    # Shares of the positive sum 2.0: 45%, 30%, 22.5% -> 22%, 2.5% (fourth, left out).
    assert spi_explain(bar) == "SPI 78 (high): 45% taker selling, 30% long liquidations, 22% exchange inflow"


def test_without_positive_contributions_only_the_value_and_regime():
    assert spi_explain(_bar(31.6, "calm", {"taker_sell_ratio": -0.4, "ofi": None})) == "SPI 32 (calm)"
    assert spi_explain(_bar(None, "", {})) is None and spi_explain(None) is None
