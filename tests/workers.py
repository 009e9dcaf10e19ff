"""Loaded first (`-p tests.workers` in pytest's options): `make test` runs the tests in two processes
(pytest-xdist), and each needs a Redis of its own, as pytest-django gives each a test database of its own. The
tests flush their Redis database, and the cache's clear() is a FLUSHDB: shared, one process would wipe the other's
broker queue and cache halfway through a test. Worker gwN gets the embedded Redis on EMBEDDED_REDIS_PORT + N, or,
under REDIS_URL, that server's database number + N. Settings are read after this, so everything (the app, the
subprocesses a test starts) follows."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and _worker[2:].isdigit() and int(_worker[2:]):
    n = int(_worker[2:])
    if "REDIS_URL" in os.environ:
        parts = urlsplit(os.environ["REDIS_URL"])
        db = int(parts.path.strip("/") or 0) + n
        os.environ["REDIS_URL"] = urlunsplit(parts._replace(path=f"/{db}"))
    else:
        os.environ["EMBEDDED_REDIS_PORT"] = str(int(os.environ.get("EMBEDDED_REDIS_PORT", "6390")) + n)


def pytest_collection_modifyitems(items) -> None:
    """schemathesis names its items one per API operation ("test_api...[GET /api/v1/bars]") but gives them all the
    test function's node ID. pytest-xdist schedules by node ID, so it ran the first operation only (1,146 of 1,150
    tests reported). Each item gets a node ID that ends in its own name."""
    for item in items:
        head, _, tail = item.nodeid.rpartition("::")
        if head and tail != item.name:
            item._id = type(item._id).parse(f"{head}::{item.name}")  # pytest 9 keeps the ID parsed
