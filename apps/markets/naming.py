"""The one name of an instrument, for every page, email, toast and rule sentence.

Spot and perpetual markets of one symbol differ only in their market type, so the name always carries it:
full "BTCUSDT perp · Binance", short "BTCUSDT perp". Recorded data replayed as if live is named REPLAY.
"""

from __future__ import annotations

import re

KIND_WORDS = {"spot": "spot", "perp": "perp"}


def instrument_kind_word(instrument) -> str:
    return KIND_WORDS.get(instrument.kind, instrument.kind)


def instrument_short_name(instrument) -> str:
    """Symbol and market type: "BTCUSDT perp"."""
    return f"{instrument.symbol} {instrument_kind_word(instrument)}"


_REPLAY_MARK = re.compile(r"\s*\(REPLAY\)\s*$", re.IGNORECASE)


def instrument_exchange_name(instrument, *, mark_replay: bool = True) -> str:
    """The exchange as people call it, "Binance (REPLAY)" for recorded data (pages that show a REPLAY badge
    instead pass mark_replay=False), however the exchange row is named."""
    exchange = instrument.exchange
    name = _REPLAY_MARK.sub("", exchange.name) or exchange.slug
    return f"{name} (REPLAY)" if mark_replay and exchange.is_replay else name


def instrument_full_name(instrument) -> str:
    """Symbol, market type and exchange: "BTCUSDT perp · Binance"."""
    return f"{instrument_short_name(instrument)} · {instrument_exchange_name(instrument)}"
