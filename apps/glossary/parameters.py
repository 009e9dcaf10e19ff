"""Settings quoted in glossary text as {{ NAME }} placeholders, filled at render time.

Term text is data, never a Django template: only the names below are substituted, by a strict
regex, so the text shows the values the running instance actually uses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from django.conf import settings

# The one place defaults live, for settings that other parts of PressureWeb may not define yet.
GLOSSARY_PARAMETER_DEFAULTS: dict[str, object] = {
    "BOOK_DEPTH_BANDS": (0.1, 0.5, 1.0, 2.0),
    "BOOK_SAMPLE_INTERVAL_MS": 1000,
    "SPI_WINDOW_BARS": 240,
    # Lower bound of each regime, in SPI points.
    "SPI_REGIME_THRESHOLDS": {"calm": 0, "elevated": 40, "high": 60, "extreme": 80},
    "SPI_WEIGHTS": None,  # the weights the index uses: settings.SPI_WEIGHTS or DEFAULT_WEIGHTS (see parameter_value)
    "BTC_MIN_CONFIRMATIONS": 2,
    "NETFLOW_Z_WINDOW_DAYS": 30,
    "WHALE_TOP_N": 10,
    "LARGE_TRADE_QUANTILE": 0.95,
    "VPIN_BUCKETS": 50,
}
REGIME_NAMES = ("calm", "elevated", "high", "extreme")
EN_DASH = "\u2013"

PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
# Anything that looks like template syntax, so a typo such as {{ SPI_WINDOW }} or {% if %} is caught.
TEMPLATE_SYNTAX_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


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


_FORMATTERS: dict[str, Callable[[object], str]] = {
    "BOOK_DEPTH_BANDS": _percent_list,
    "SPI_REGIME_THRESHOLDS": _regimes,
    "SPI_WEIGHTS": _weights,
}


def parameter_names() -> frozenset[str]:
    return frozenset(GLOSSARY_PARAMETER_DEFAULTS)


def parameter_value(name: str) -> object:
    if name == "SPI_WEIGHTS":
        from apps.pressure.spi import weights  # the weights the index really uses (settings or defaults)

        return dict(weights())
    value = getattr(settings, name, None)
    return GLOSSARY_PARAMETER_DEFAULTS[name] if value is None else value


def parameter_text(name: str) -> str:
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


def placeholders_fill(text: str) -> str:
    """Replace known {{ NAME }} placeholders; anything else stays as written (the loader rejects it)."""
    cache: dict[str, str] = {}

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in GLOSSARY_PARAMETER_DEFAULTS:
            return match.group(0)
        if name not in cache:
            cache[name] = parameter_text(name)
        return cache[name]

    return PLACEHOLDER_RE.sub(replace, text)
