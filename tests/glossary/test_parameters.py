
from apps.glossary.parameters import (
    GLOSSARY_PARAMETER_DEFAULTS,
    parameter_text,
    placeholders_fill,
    placeholders_unknown,
)


def test_defaults_format_readably(settings):
    for name in GLOSSARY_PARAMETER_DEFAULTS:
        if hasattr(settings, name):
            delattr(settings, name)
    assert parameter_text("BOOK_DEPTH_BANDS") == "0.1%, 0.5%, 1% and 2%"
    assert parameter_text("SPI_REGIME_THRESHOLDS") == "calm < 64, elevated 64\u201374, high 74\u201382, extreme ≥ 82"
    assert parameter_text("SPI_WINDOW_BARS") == "240"
    assert parameter_text("BOOK_SAMPLE_INTERVAL_MS") == "1,000"
    assert parameter_text("BTC_MIN_CONFIRMATIONS") == "2"
    assert parameter_text("NETFLOW_Z_WINDOW_DAYS") == "30"
    assert parameter_text("WHALE_TOP_N") == "10"
    assert parameter_text("LARGE_TRADE_QUANTILE") == "0.95"
    assert parameter_text("VPIN_BUCKETS") == "50"
    assert parameter_text("DROP_RISK_PCT") == "1"
    assert parameter_text("DROP_RISK_HORIZON_MINUTES") == "15"
    assert parameter_text("BAR_FINAL_GRACE_MS") == "2,000"
    assert parameter_text("EPISODE_CONFIRM_MINUTES") == "10"
    # The weights text is the index's own mix (relative weights), not a copy kept for the glossary.
    from apps.pressure.indicators.index import DEFAULT_WEIGHTS

    text = parameter_text("SPI_WEIGHTS")
    assert text.startswith("`taker_sell_ratio` 1")
    assert all(f"`{name}`" in text for name in DEFAULT_WEIGHTS)


def test_settings_override_defaults(settings):
    settings.BOOK_DEPTH_BANDS = (0.25, 3.0)
    settings.SPI_REGIME_THRESHOLDS = (30, 50, 70)
    settings.SPI_WINDOW_BARS = 1440
    assert parameter_text("BOOK_DEPTH_BANDS") == "0.25% and 3%"
    assert parameter_text("SPI_REGIME_THRESHOLDS") == "calm < 30, elevated 30\u201350, high 50\u201370, extreme ≥ 70"
    assert placeholders_fill("window of {{ SPI_WINDOW_BARS }} bars") == "window of 1,440 bars"


def test_engine_values_format_readably():
    assert parameter_text("MAD_SCALE") == "1.4826"
    assert parameter_text("MEANAD_SCALE") == "1.2533"
    assert parameter_text("REGIME_PERCENTILES") == "80th, 95th and 99th"
    assert parameter_text("REGIME_HIGH_SHARE") == "95%"
    assert parameter_text("REGIME_WINDOW_DAYS") == "30"
    assert parameter_text("REGIME_REFRESH_HOURS") == "24"
    assert parameter_text("EPISODE_DOMINANCE") == "50%"
    assert parameter_text("SPI_IMBALANCE_BAND") == "0.1%"
    assert parameter_text("SPI_BID_DEPTH_BAND") == "0.5%"
    assert parameter_text("EPISODE_GROUP_EVENT_SHOCK") == (
        "`spread_widening` (spread widening), `dvol_rise` (DVOL rise), `bid_withdrawal` (bid withdrawal) and "
        "`kyles_lambda` (high price impact)")


def test_ordinals():
    from apps.glossary.parameters import _ordinal

    assert [_ordinal(q) for q in (0.8, 0.91, 0.92, 0.93, 0.995)] == ["80th", "91st", "92nd", "93rd", "99.5th"]


def test_fill_substitutes_known_names_only():
    text = "bands {{BOOK_DEPTH_BANDS}}, {{ NOT_A_SETTING }}, {{ settings.SECRET_KEY }}, {% if x %}"
    filled = placeholders_fill(text)
    assert filled.startswith("bands 0.1%, 0.5%, 1% and 2%, ")
    assert "{{ NOT_A_SETTING }}" in filled and "{{ settings.SECRET_KEY }}" in filled and "{% if x %}" in filled


def test_unknown_placeholders_are_reported():
    assert placeholders_unknown("{{ SPI_WINDOW_BARS }} and {{ VPIN_BUCKETS }}") == []
    assert placeholders_unknown("{{ SPI_WINDOW }} {{ request.user }} {% load x %}") == [
        "{{ SPI_WINDOW }}", "{{ request.user }}", "{% load x %}",
    ]
