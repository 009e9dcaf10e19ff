
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
    assert parameter_text("SPI_REGIME_THRESHOLDS") == "calm < 40, elevated 40\u201360, high 60\u201380, extreme ≥ 80"
    assert parameter_text("SPI_WINDOW_BARS") == "240"
    assert parameter_text("BOOK_SAMPLE_INTERVAL_MS") == "1,000"
    assert parameter_text("BTC_MIN_CONFIRMATIONS") == "2"
    assert parameter_text("NETFLOW_Z_WINDOW_DAYS") == "30"
    assert parameter_text("WHALE_TOP_N") == "10"
    assert parameter_text("LARGE_TRADE_QUANTILE") == "0.95"
    assert parameter_text("VPIN_BUCKETS") == "50"
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
