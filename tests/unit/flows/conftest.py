"""Fixtures for the pure flow tests.

These tests need neither Redis nor Django, so the suite-wide autouse Redis fixture is overridden
here: they also run with ``-p no:django``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .builders import read_labels


@pytest.fixture(scope="session", autouse=True)
def redis_server() -> Iterator[None]:
    yield None


@pytest.fixture(scope="session")
def btc_labels() -> dict[str, str]:
    """Address -> exchange slug, from the shipped label file."""
    return {r["address"]: r["exchange"] for r in read_labels("btc")}


@pytest.fixture(scope="session")
def btc_wallets(btc_labels) -> dict[str, list[str]]:
    """Exchange slug -> its labelled BTC addresses (sorted)."""
    out: dict[str, list[str]] = {}
    for address, exchange in sorted(btc_labels.items()):
        out.setdefault(exchange, []).append(address)
    return out
