"""Values quoted in glossary text as {{ NAME }} placeholders, filled at render time.

Term text is data, never a Django template: only the names below are substituted, by a strict
regex, so the text shows the values the running instance actually uses. Two kinds of names:

- settings (GLOSSARY_PARAMETER_DEFAULTS): read from django.conf.settings, with a default for
  settings other parts of PressureWeb may not define yet;
- engine values (ENGINE_PARAMETERS): read from the index's own modules at render time (the MAD
  scale, the regime percentiles, the episode groups, the components and their signs...), so a
  change to the engine changes the glossary with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence

from django.conf import settings

# The one place defaults live, for settings that other parts of PressureWeb may not define yet.
GLOSSARY_PARAMETER_DEFAULTS: dict[str, object] = {
    "BOOK_DEPTH_BANDS": (0.1, 0.5, 1.0, 2.0),
    "BOOK_SAMPLE_INTERVAL_MS": 1000,
    "SPI_WINDOW_BARS": 240,
    "SPI_MIN_PERIODS": 30,
    "SPI_CLIP": 4.0,
    "SPI_COMPONENT_WINDOW": 30,
    # Boundaries (elevated, high, extreme) until an instrument has its own percentiles: the engine's defaults.
    "SPI_REGIME_THRESHOLDS": None,
    "SPI_REGIME_MIN_BARS": 500,
    "SPI_WEIGHTS": None,  # the weights the index uses: settings.SPI_WEIGHTS or DEFAULT_WEIGHTS (see parameter_value)
    "BAR_FINAL_GRACE_MS": 2000,
    "BAR_FINAL_QUIET_MS": 10_000,
    "EPISODE_CONFIRM_MINUTES": 10,
    "EPISODE_END_MINUTES": 10,
    "VPIN_BUCKETS": 50,
    "BTC_MIN_CONFIRMATIONS": 2,
    "NETFLOW_Z_WINDOW_DAYS": 30,
    "NETFLOW_Z_MIN_HOURS": 24,
    "WHALE_TOP_N": 10,
    "FLOWS_POLL_SECONDS": 300,
    # The drop-risk forecast's target: price falls at least DROP_RISK_PCT % within DROP_RISK_HORIZON_MINUTES.
    "DROP_RISK_PCT": 1,
    "DROP_RISK_HORIZON_MINUTES": 15,
}
REGIME_NAMES = ("calm", "elevated", "high", "extreme")
EN_DASH = "\u2013"
_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_LARGE_TRADE_DEFAULTS = {"quantile": 0.95, "window": 5_000, "min_trades": 500}

PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
# Anything that looks like template syntax, so a typo such as {{ SPI_WINDOW }} or {% if %} is caught.
TEMPLATE_SYNTAX_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_PAREN_RE = re.compile(r"\s*\([^)]*\)")


def _number(value) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() and abs(value) >= 1000 else f"{value:g}"
    return str(value)


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _percent_list(value) -> str:
    return _join([f"{_number(float(v))}%" for v in value])


def _regimes(value) -> str:
    """{"calm": 0, "elevated": 40, ...} (lower bounds) or (40, 60, 80) (boundaries) as readable bands."""
    if isinstance(value, Mapping):
        ordered = sorted(value.items(), key=lambda item: item[1])
        names, bounds = [n for n, _ in ordered], [b for _, b in ordered][1:]
    else:
        bounds = list(value)
        names = list(REGIME_NAMES[: len(bounds) + 1])
    if not bounds:
        return ", ".join(names)
    parts = [f"{names[0]} < {_number(bounds[0])}"]
    parts += [f"{names[i]} {_number(bounds[i - 1])}{EN_DASH}{_number(bounds[i])}" for i in range(1, len(bounds))]
    parts.append(f"{names[-1]} ≥ {_number(bounds[-1])}")
    return ", ".join(parts)


def _weights(value) -> str:
    items = value.items() if isinstance(value, Mapping) else value
    return ", ".join(f"`{name}` {_number(float(weight))}" for name, weight in items)


def _generic(value) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_number(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return _join([_number(v) for v in value])
    return _number(value)


def _percent_number(fraction: float) -> str:
    return _number(round(100 * float(fraction), 6))


def _ordinal(fraction: float) -> str:
    """0.95 -> "95th", 0.91 -> "91st", 0.995 -> "99.5th"."""
    pct = round(100 * float(fraction), 6)
    if not float(pct).is_integer():
        return f"{_number(pct)}th"
    n = int(pct)
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _components(names) -> str:
    """Component names as code, each with the index's label: "`oi_drop` (open-interest drop)"."""
    from apps.pressure.indicators.index import LABELS

    labels = {n: _PAREN_RE.sub("", LABELS[n]) for n in names if n in LABELS}
    named = [f"`{n}` ({labels[n]})" if labels.get(n) else f"`{n}`" for n in names]
    return _join(named) if named else "none"


# --- values read from the engine at render time -------------------------------------------------------------


def _weighted() -> list[str]:
    from apps.pressure.spi import weights

    return [name for name, weight in weights().items() if float(weight) > 0]


def _quantile(position: int) -> float:
    from apps.pressure.indicators import index

    return index.REGIME_QUANTILES[position]


def _episode_group(name: str) -> tuple[str, ...]:
    from apps.pressure.indicators import episodes

    return tuple(episodes.EPISODE_GROUPS.get(name, ()))


def _ungrouped() -> list[str]:
    from apps.pressure.indicators import episodes

    grouped = {c for members in episodes.EPISODE_GROUPS.values() for c in members}
    return [name for name in _weighted() if name not in grouped]


def _flipped() -> list[str]:
    from apps.pressure.indicators.index import SIGNS

    return [name for name in _weighted() if SIGNS.get(name, 1) < 0]


def _bar_band(prefix: str) -> str:
    """The book band of the bar column the index reads, e.g. imbalance_0_1pct -> "0.1%"."""
    from apps.pressure.spi import BAR_COLUMNS

    column = next((c for c in BAR_COLUMNS if c.startswith(prefix)), "")
    return column[len(prefix):].removesuffix("pct").replace("_", ".") + "%" if column else "?"


def _spi_range() -> str:
    clip = float(parameter_value("SPI_CLIP"))
    low, high = (100.0 / (1.0 + math.exp(-s)) for s in (-clip, clip))
    return f"{low:.1f} and {high:.1f}"


def _large_trades(key: str):
    return (getattr(settings, "SPI_LARGE_TRADES", None) or _LARGE_TRADE_DEFAULTS).get(key, _LARGE_TRADE_DEFAULTS[key])


def _index_attr(name: str):
    from apps.pressure.indicators import index

    return getattr(index, name)


def _episodes_attr(name: str):
    from apps.pressure.indicators import episodes

    return getattr(episodes, name)


# name -> (value reader, text formatter)
ENGINE_PARAMETERS: dict[str, tuple[Callable[[], object], Callable[[object], str]]] = {
    "MAD_SCALE": (lambda: _index_attr("MAD_SCALE"), _number),
    "MEANAD_SCALE": (lambda: _index_attr("MEANAD_SCALE"), _number),
    "REGIME_PERCENTILES": (lambda: _index_attr("REGIME_QUANTILES"), lambda v: _join([_ordinal(q) for q in v])),
    "REGIME_ELEVATED_PERCENTILE": (lambda: _quantile(0), _ordinal),
    "REGIME_HIGH_PERCENTILE": (lambda: _quantile(1), _ordinal),
    "REGIME_EXTREME_PERCENTILE": (lambda: _quantile(2), _ordinal),
    "REGIME_ELEVATED_SHARE": (lambda: _quantile(0), lambda v: f"{_percent_number(v)}%"),
    "REGIME_HIGH_SHARE": (lambda: _quantile(1), lambda v: f"{_percent_number(v)}%"),
    "REGIME_EXTREME_SHARE": (lambda: _quantile(2), lambda v: f"{_percent_number(v)}%"),
    "REGIME_WINDOW_DAYS": (lambda: _index_attr("REGIME_WINDOW_MS") / _DAY_MS, _number),
    "REGIME_REFRESH_HOURS": (lambda: _index_attr("REGIME_REFRESH_MS") / _HOUR_MS, _number),
    "SPI_COMPONENT_COUNT": (lambda: len(_weighted()), _number),
    "SPI_SIGN_FLIPPED": (_flipped, _components),
    "SPI_RANGE": (_spi_range, str),
    "SPI_IMBALANCE_BAND": (lambda: _bar_band("imbalance_"), str),
    "SPI_BID_DEPTH_BAND": (lambda: _bar_band("bid_depth_"), str),
    "EPISODE_DOMINANCE": (lambda: _episodes_attr("DOMINANCE"), lambda v: f"{_percent_number(v)}%"),
    "EPISODE_GROUP_DELEVERAGING": (lambda: _episode_group("deleveraging"), _components),
    "EPISODE_GROUP_PROFIT_TAKING": (lambda: _episode_group("profit-taking"), _components),
    "EPISODE_GROUP_EVENT_SHOCK": (lambda: _episode_group("event-shock"), _components),
    "EPISODE_UNGROUPED": (_ungrouped, _components),
    "LARGE_TRADE_QUANTILE": (lambda: _large_trades("quantile"), _number),
    "LARGE_TRADE_WINDOW": (lambda: _large_trades("window"), _number),
    "LARGE_TRADE_MIN_TRADES": (lambda: _large_trades("min_trades"), _number),
}

_FORMATTERS: dict[str, Callable[[object], str]] = {
    "BOOK_DEPTH_BANDS": _percent_list,
    "SPI_REGIME_THRESHOLDS": _regimes,
    "SPI_WEIGHTS": _weights,
}


def parameter_names() -> frozenset[str]:
    return frozenset(GLOSSARY_PARAMETER_DEFAULTS) | frozenset(ENGINE_PARAMETERS)


def parameter_value(name: str) -> object:
    if name in ENGINE_PARAMETERS:
        return ENGINE_PARAMETERS[name][0]()
    if name == "SPI_WEIGHTS":
        from apps.pressure.spi import weights  # the weights the index really uses (settings or defaults)

        return dict(weights())
    value = getattr(settings, name, None)
    if value is None and name == "SPI_REGIME_THRESHOLDS":
        return _index_attr("DEFAULT_REGIME_THRESHOLDS")
    return GLOSSARY_PARAMETER_DEFAULTS[name] if value is None else value


def parameter_text(name: str) -> str:
    if name in ENGINE_PARAMETERS:
        return ENGINE_PARAMETERS[name][1](parameter_value(name))
    return _FORMATTERS.get(name, _generic)(parameter_value(name))


def placeholders_unknown(text: str) -> list[str]:
    """Template-like fragments in text that are not a known {{ NAME }} placeholder."""
    known = parameter_names()
    unknown = []
    for match in TEMPLATE_SYNTAX_RE.finditer(text):
        name = PLACEHOLDER_RE.fullmatch(match.group(0))
        if name is None or name.group(1) not in known:
            unknown.append(match.group(0))
    return unknown


def placeholders_used(text: str) -> list[str]:
    """The known placeholder names in text, in order of first use."""
    known = parameter_names()
    return list(dict.fromkeys(m.group(1) for m in PLACEHOLDER_RE.finditer(text) if m.group(1) in known))


def placeholders_fill(text: str) -> str:
    """Replace known {{ NAME }} placeholders; anything else stays as written (the loader rejects it)."""
    known = parameter_names()
    cache: dict[str, str] = {}

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in known:
            return match.group(0)
        if name not in cache:
            cache[name] = parameter_text(name)
        return cache[name]

    return PLACEHOLDER_RE.sub(replace, text)
