"""The indicator tests are pure math: they need neither Redis nor Django, so the suite-wide
autouse Redis fixture is overridden here and they also run with ``-p no:django``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def redis_server() -> Iterator[None]:
    yield None
