"""pressureweb.lib is plain Python: no Redis, no database (these tests also run with ``-p no:django``)."""

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def redis_server() -> Iterator[None]:
    yield None
