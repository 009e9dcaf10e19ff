"""The glossary says what the engine does: every number in a "How does PressureWeb compute it?" section is a
placeholder filled from the value the index really uses, and the text follows when that value changes.

Each override below changes a value where the engine reads it (a setting, or a constant of
apps.pressure.indicators / apps.pressure.spi), never in the glossary, and names the words the
rendered text must then contain.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest

from apps.glossary.loader import term_sources_read
from apps.glossary.models import FACET_FIELDS
from apps.glossary.parameters import placeholders_used
from apps.glossary.rendering import markdown_plain
from apps.pressure import spi
from apps.pressure.indicators import episodes, index

SOURCES = {source.slug: source for source in term_sources_read()}
COMPUTE = {slug: source.facets["computation"] for slug, source in SOURCES.items() if source.facets.get("computation")}
NEW_TERMS = ("final-bar", "robust-z-score", "spi-contribution", "drop-risk", "base-rate", "auc", "brier-score",
             "calibration", "mark-price", "index-price", "basis")
CODE_RE = re.compile(r"`[^`]*`")
PLACEHOLDER_RE = re.compile(r"\{\{[^}]*\}\}")
NUMBER_RE = re.compile(r"(?<![\w.-])\d+(?:,\d{3})*(?:\.\d+)?")  # not the 20 of ERC-20
# Mathematical constants, not parameters: 100 x logistic, 1 - x, mid = (ask + bid) / 2, bps x 10,000, 0 and 1.
PLAIN_NUMBERS = {"0", "1", "2", "100", "10,000"}


def _setting(name: str, value) -> Callable:
    def apply(monkeypatch, settings):
        setattr(settings, name, value)
    return apply


def _attr(target, name: str, value) -> Callable:
    def apply(monkeypatch, settings):
        monkeypatch.setattr(target, name, value)
    return apply


def _groups(**changes) -> Callable:
    groups = {**episodes.EPISODE_GROUPS, **{k.replace("_", "-"): v for k, v in changes.items()}}
    return _attr(episodes, "EPISODE_GROUPS", groups)


def _bar_column(old: str, new: str) -> Callable:
    return _attr(spi, "BAR_COLUMNS", [new if c == old else c for c in spi.BAR_COLUMNS])


def _flip_taker_sell_ratio(monkeypatch, settings):
    monkeypatch.setitem(index.SIGNS, "taker_sell_ratio", -1)


_LARGE = {"quantile": 0.9, "window": 2000, "min_trades": 200}
_QUANTILES = (0.7, 0.9, 0.975)
# placeholder -> (change at the source, words the rendered text must contain afterwards)
OVERRIDES: dict[str, tuple[Callable, str]] = {
    "BOOK_DEPTH_BANDS": (_setting("BOOK_DEPTH_BANDS", (0.2, 0.7)), "0.2% and 0.7%"),
    "BOOK_SAMPLE_INTERVAL_MS": (_setting("BOOK_SAMPLE_INTERVAL_MS", 1234), "1,234 ms"),
    "SPI_WINDOW_BARS": (_setting("SPI_WINDOW_BARS", 1440), "1,440 bars"),
    "SPI_MIN_PERIODS": (_setting("SPI_MIN_PERIODS", 45), "45 earlier values"),
    "SPI_CLIP": (_setting("SPI_CLIP", 3.0), "±3"),
    "SPI_RANGE": (_setting("SPI_CLIP", 3.0), "4.7 and 95.3"),
    "SPI_COMPONENT_WINDOW": (_setting("SPI_COMPONENT_WINDOW", 77), "77 bars"),
    "SPI_REGIME_THRESHOLDS": (_setting("SPI_REGIME_THRESHOLDS", (50.0, 70.0, 90.0)),
                              "calm < 50, elevated 50\u201370, high 70\u201390, extreme ≥ 90"),
    "SPI_REGIME_MIN_BARS": (_setting("SPI_REGIME_MIN_BARS", 777), "777 final values"),
    "SPI_WEIGHTS": (_setting("SPI_WEIGHTS", {"taker_sell_ratio": 2.0, "ofi": 1.0}), "taker_sell_ratio 2, ofi 1"),
    "SPI_COMPONENT_COUNT": (_setting("SPI_WEIGHTS", {"taker_sell_ratio": 1.0, "ofi": 1.0, "vpin": 0.5}),
                            "these 3 components"),
    "SPI_SIGN_FLIPPED": (_flip_taker_sell_ratio, "taker_sell_ratio (taker selling), cvd_slope"),
    "BAR_FINAL_GRACE_MS": (_setting("BAR_FINAL_GRACE_MS", 3500), "3,500 ms"),
    "BAR_FINAL_QUIET_MS": (_setting("BAR_FINAL_QUIET_MS", 45_000), "45,000 ms"),
    "EPISODE_CONFIRM_MINUTES": (_setting("EPISODE_CONFIRM_MINUTES", 7.5), "7.5 minutes"),
    "EPISODE_END_MINUTES": (_setting("EPISODE_END_MINUTES", 12.0), "12 minutes"),
    "VPIN_BUCKETS": (_setting("VPIN_BUCKETS", 77), "77 bars"),
    "BTC_MIN_CONFIRMATIONS": (_setting("BTC_MIN_CONFIRMATIONS", 6), "6 confirmations"),
    "NETFLOW_Z_WINDOW_DAYS": (_setting("NETFLOW_Z_WINDOW_DAYS", 14), "14 days"),
    "NETFLOW_Z_MIN_HOURS": (_setting("NETFLOW_Z_MIN_HOURS", 48), "48 hours"),
    "WHALE_TOP_N": (_setting("WHALE_TOP_N", 25), "25"),
    "FLOWS_POLL_SECONDS": (_setting("FLOWS_POLL_SECONDS", 120), "120 seconds"),
    "DROP_RISK_PCT": (_setting("DROP_RISK_PCT", 2.5), "2.5%"),
    "DROP_RISK_HORIZON_MINUTES": (_setting("DROP_RISK_HORIZON_MINUTES", 60), "60 minutes"),
    "LARGE_TRADE_QUANTILE": (_setting("SPI_LARGE_TRADES", _LARGE), "0.9 quantile"),
    "LARGE_TRADE_WINDOW": (_setting("SPI_LARGE_TRADES", _LARGE), "2,000 trades"),
    "LARGE_TRADE_MIN_TRADES": (_setting("SPI_LARGE_TRADES", _LARGE), "200 earlier trades"),
    "MAD_SCALE": (_attr(index, "MAD_SCALE", 1.5), "1.5 \u00d7 MAD"),
    "MEANAD_SCALE": (_attr(index, "MEANAD_SCALE", 1.25), "1.25 \u00d7 the mean absolute deviation"),
    "REGIME_PERCENTILES": (_attr(index, "REGIME_QUANTILES", _QUANTILES), "70th, 90th and 97.5th percentiles"),
    "REGIME_ELEVATED_PERCENTILE": (_attr(index, "REGIME_QUANTILES", _QUANTILES), "70th"),
    "REGIME_HIGH_PERCENTILE": (_attr(index, "REGIME_QUANTILES", _QUANTILES), "90th"),
    "REGIME_EXTREME_PERCENTILE": (_attr(index, "REGIME_QUANTILES", _QUANTILES), "97.5th percentile"),
    "REGIME_ELEVATED_SHARE": (_attr(index, "REGIME_QUANTILES", _QUANTILES), "70%"),
    "REGIME_HIGH_SHARE": (_attr(index, "REGIME_QUANTILES", _QUANTILES), "90%"),
    "REGIME_EXTREME_SHARE": (_attr(index, "REGIME_QUANTILES", _QUANTILES), "97.5%"),
    "REGIME_WINDOW_DAYS": (_attr(index, "REGIME_WINDOW_MS", 14 * 86_400_000), "14 days"),
    "REGIME_REFRESH_HOURS": (_attr(index, "REGIME_REFRESH_MS", 6 * 3_600_000), "every 6 hours"),
    "SPI_IMBALANCE_BAND": (_bar_column("imbalance_0_1pct", "imbalance_1pct"), "1%"),
    "SPI_BID_DEPTH_BAND": (_bar_column("bid_depth_0_5pct", "bid_depth_2pct"), "2% of mid"),
    "EPISODE_DOMINANCE": (_attr(episodes, "DOMINANCE", 0.6), "60%"),
    "EPISODE_GROUP_DELEVERAGING": (_groups(deleveraging=("funding_drop", "long_liquidations")),
                                   "funding_drop (funding drop) and long_liquidations (long liquidations)"),
    "EPISODE_GROUP_PROFIT_TAKING": (_groups(profit_taking=("whale_ratio", "taker_sell_ratio")),
                                    "whale_ratio (whale deposits) and taker_sell_ratio (taker selling)"),
    "EPISODE_GROUP_EVENT_SHOCK": (_groups(event_shock=("kyles_lambda", "dvol_rise")),
                                  "kyles_lambda (high price impact) and dvol_rise (DVOL rise)"),
    "EPISODE_UNGROUPED": (_groups(event_shock=(*episodes.EPISODE_GROUPS["event-shock"], "vpin")),
                          "imbalance (ask-heavy book) and trade_count_imbalance (sell-heavy trade count)"),
}


def _text(source) -> str:
    return "\n\n".join(source.facets.get(name, "") for name in FACET_FIELDS)


def _used() -> dict[str, list[str]]:
    """placeholder -> the slugs whose text uses it."""
    used: dict[str, list[str]] = {}
    for slug, source in SOURCES.items():
        for name in placeholders_used(_text(source)):
            used.setdefault(name, []).append(slug)
    return used


def _rendered(slug: str) -> str:
    return markdown_plain(_text(SOURCES[slug]))


def test_compute_sections_quote_parameters_only_through_placeholders():
    found = {}
    for slug, text in COMPUTE.items():
        prose = CODE_RE.sub(" ", PLACEHOLDER_RE.sub(" ", text))
        numbers = sorted(set(NUMBER_RE.findall(prose)) - PLAIN_NUMBERS)
        if numbers:
            found[slug] = numbers
    assert found == {}, "numbers written into compute sections instead of placeholders"


def test_every_placeholder_in_the_glossary_has_an_override_here():
    assert sorted(set(_used()) - set(OVERRIDES)) == []


@pytest.mark.parametrize("name", sorted(OVERRIDES))
def test_the_text_follows_the_value_the_engine_uses(name, monkeypatch, settings):
    slugs = _used().get(name, [])
    assert slugs, f"{name} is not used by any term"
    before = {slug: _rendered(slug) for slug in slugs}
    apply, expected = OVERRIDES[name]
    apply(monkeypatch, settings)
    for slug in slugs:
        after = _rendered(slug)
        assert after != before[slug], f"{slug}: {name} changed at its source, the text did not"
        assert expected in after, f"{slug}: {name} rendered without {expected!r}"


def _component_bullets() -> dict[str, str]:
    return dict(re.findall(r"^- `([a-z_]+)`: (.*)$", COMPUTE["selling-pressure-index"], re.MULTILINE))


def test_the_index_term_lists_exactly_the_engine_components_with_their_signs():
    bullets = _component_bullets()
    assert sorted(bullets) == sorted(name for name, weight in index.DEFAULT_WEIGHTS.items() if weight > 0)
    flipped = {name for name, text in bullets.items() if "flipped" in text}
    assert flipped == {name for name in bullets if index.SIGNS[name] < 0}


def test_the_index_term_names_the_index_columns_it_reads():
    # The kline caveat and the band bullets rest on which bar columns the engine reads.
    assert "imbalance_0_1pct" in spi.BAR_COLUMNS and "bid_depth_0_5pct" in spi.BAR_COLUMNS
    for column in ("buy_trades", "sell_trades", "large_trade_sell_share", "ofi", "spread_bps"):
        assert column in spi.BAR_COLUMNS


def test_compute_sections_name_only_weighted_components():
    weighted = {name for name, weight in index.DEFAULT_WEIGHTS.items() if weight > 0}
    unweighted = set(index.SIGNS) - weighted
    for slug, text in COMPUTE.items():
        named = {m.strip("`") for m in CODE_RE.findall(text)}
        assert not named & unweighted, f"{slug} describes {named & unweighted} as index components"


@pytest.mark.parametrize("group", list(episodes.EPISODE_GROUPS))
def test_each_episode_group_has_its_term_and_placeholder(group):
    placeholder = "EPISODE_GROUP_" + group.upper().replace("-", "_")
    assert placeholder in OVERRIDES
    assert placeholder in placeholders_used(COMPUTE[f"episode-{group}"])
    assert placeholder in placeholders_used(COMPUTE["selling-pressure-episode"])


def test_mixed_is_the_engine_fallback_label():
    assert f"episode-{episodes.MIXED}" in COMPUTE
    assert "EPISODE_DOMINANCE" in placeholders_used(COMPUTE[f"episode-{episodes.MIXED}"])


def test_stablecoin_netflow_is_shown_but_not_in_the_index():
    assert "stablecoin_netflow" not in index.DEFAULT_WEIGHTS
    assert "not part of the Selling Pressure Index" in COMPUTE["stablecoin-netflow"]


def test_drop_risk_target_has_defaults_before_the_settings_exist(settings):
    for name in ("DROP_RISK_PCT", "DROP_RISK_HORIZON_MINUTES"):
        if hasattr(settings, name):
            delattr(settings, name)
    assert "at least 1% within 15 minutes" in markdown_plain(COMPUTE["drop-risk"])


def test_new_terms_link_both_ways():
    for slug in NEW_TERMS:
        assert slug in SOURCES
    one_way = [(a, b) for a, source in SOURCES.items() for b in source.related
               if (a in NEW_TERMS or b in NEW_TERMS) and a not in SOURCES[b].related]
    assert one_way == []


def test_regime_window_is_in_whole_days():
    # The terms say "the last N days": the engine's window must be whole days for that to be exact.
    assert timedelta(milliseconds=index.REGIME_WINDOW_MS) % timedelta(days=1) == timedelta(0)
