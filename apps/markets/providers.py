"""Instruments people watch, supplied by the apps that know about people.

Markets and ingestion know no users: the watchlists app registers a provider in its AppConfig.ready(), and
exchanges' registry_sync gives a feed to every instrument any provider names (on top of the defaults).
"""

from __future__ import annotations

from collections.abc import Callable

WatchedProvider = Callable[[], set[int]]  # () -> instrument ids
_providers: dict[str, WatchedProvider] = {}


def watched_provider_register(*, name: str, provider: WatchedProvider) -> None:
    _providers[name] = provider


def watched_instrument_ids() -> set[int]:
    """The union of what every registered provider names."""
    ids: set[int] = set()
    for provider in _providers.values():
        ids |= provider()
    return ids
