"""The web role's PostgreSQL pool (DB_POOL_MAX_SIZE, set in the Procfile).

Daphne serves each request from a thread of its own; with persistent connections (CONN_MAX_AGE > 0)
every request thread would keep one open until PostgreSQL refuses new clients. With the pool, a
Daphne process holds at most DB_POOL_MAX_SIZE connections however many requests run at once.

Needs PostgreSQL: in the suite's SQLite pass it runs itself again on PostgreSQL, like
test_pg_connection_drop, and fails (never skips) when PostgreSQL is not reachable.
"""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.db import connection

from apps.markets.services import instrument_ensure
from tests.conftest import database_url
from tests.integration.test_pg_connection_drop import _run_again_on_postgresql

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

POOL = 2
REQUESTS, AT_ONCE = 60, 12


def _backends(dba: psycopg.Connection) -> int:
    return dba.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND pid <> pg_backend_pid()").fetchone()[0]


def test_daphne_under_concurrent_requests_keeps_its_connections_within_the_pool(request, stack_factory):
    if connection.vendor != "postgresql":
        _run_again_on_postgresql(request.node.nodeid)
        return
    inst = instrument_ensure(exchange_slug="pooltest", market="spot", symbol="POOLUSDT", base="POOL", quote="USDT")
    connection.close()
    # CONN_MAX_AGE=60 as in production: without the pool, every request thread would keep its connection.
    stack = stack_factory(extra_env={"DB_POOL_MAX_SIZE": str(POOL), "CONN_MAX_AGE": "60"})
    urls = [stack.url + path for path in ("/", inst.get_absolute_url(), "/glossary/", "/flows/")]

    def get(url: str) -> int:
        with urllib.request.urlopen(url, timeout=30) as resp:
            resp.read()
            return resp.status

    with psycopg.connect(database_url().replace("postgres://", "postgresql://"), autocommit=True) as dba:
        before = _backends(dba)  # the worker's connection and the pool's first one (from /healthz)
        peak = before
        with ThreadPoolExecutor(AT_ONCE) as pool:
            futures = [pool.submit(get, urls[i % len(urls)]) for i in range(REQUESTS)]
            while not all(f.done() for f in futures):
                peak = max(peak, _backends(dba))
            statuses = [f.result() for f in futures]
        after = _backends(dba)
    assert statuses == [200] * REQUESTS
    assert max(peak, after) <= before + POOL, (before, peak, after, stack.logs()[-2000:])
