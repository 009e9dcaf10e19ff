"""PostgreSQL drops the worker's connection mid-batch: the batch is retried whole, nothing half-written.

A real Celery worker runs the replay tick against PostgreSQL. The test holds a SHARE lock on the bars
table, so the worker's first batch blocks inside its transaction right after writing its trades and
claiming its replay window (it then needs to write bars). Knowing exactly where the worker is, the
test kills that backend with pg_terminate_backend, releases the lock, and checks that the task is
retried, the worker lives on, no partial batch was ever visible, and the stored rows equal a clean run.

pg_terminate_backend needs PostgreSQL. In the suite's SQLite pass this test runs itself again in a
pytest subprocess on a PostgreSQL database at 127.0.0.1:5432 (TEST_POSTGRES_URL to change it); it
fails, never skips, when PostgreSQL is not reachable.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction

from apps.markets.models import BookSample, SourceStatus, Trade
from apps.pressure.models import PressureBar
from apps.replay.models import ReplayStream
from apps.replay.services import replay_advance
from tests.conftest import ROOT, database_url, wait_for
from tests.integration.test_faults import replay_only_eth
from tests.integrity import assert_replay_stored_exactly_the_source

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
HISTORY_MINUTES = 3  # the first tick catches up 3 one-minute batches
TASK = "apps.replay.tasks.replay_tick"


def _run_again_on_postgresql(nodeid: str) -> None:
    try:
        psycopg.connect(f"{POSTGRES_URL}/postgres", connect_timeout=5).close()
    except psycopg.Error as exc:
        pytest.fail(f"this test needs PostgreSQL, also in the SQLite pass: {POSTGRES_URL} is not reachable: {exc}")
    env = {**os.environ, "DATABASE_URL": f"{POSTGRES_URL}/pw_pg_drop_{os.getpid()}",
           "REDIS_URL": settings.REDIS_URL}
    proc = subprocess.run([sys.executable, "-m", "pytest", nodeid, "-q", "-p", "no:cacheprovider"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and re.search(r"\b1 passed\b", out), f"on PostgreSQL:\n{out[-6000:]}"


def _blocked_by(dba: psycopg.Connection, locker_pid: int) -> list[int]:
    return [pid for (pid,) in dba.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND %s = ANY(pg_blocking_pids(pid))", [locker_pid])]


def assert_no_partial_batch_visible() -> None:
    """One consistent snapshot: every stream's trades are exactly the raw source up to its clock, and the bars
    equal a by-hand recomputation from them."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        assert_replay_stored_exactly_the_source()


def _rows() -> dict[str, list[tuple]]:
    """Everything ingestion stores, without surrogate keys and wall-clock stamps."""
    def values(model, exclude=("id", "updated_at", "last_ingest_at")):
        names = [f.attname for f in model._meta.concrete_fields if f.attname not in exclude]
        return sorted(model.objects.values_list(*names), key=repr)

    return {"trades": values(Trade), "book_samples": values(BookSample), "bars": values(PressureBar),
            "sources": values(SourceStatus), "clocks": sorted(ReplayStream.objects.values_list("name", "clock_ms"))}


def _log_count(stack, pattern: str) -> int:
    return len(re.findall(pattern, (stack.tmp / "worker.log").read_text(errors="replace")))


def test_connection_killed_mid_batch_is_retried_whole_and_stores_exactly_a_clean_run(request):
    if connection.vendor != "postgresql":
        _run_again_on_postgresql(request.node.nodeid)
        return
    from apps.replay.tasks import replay_tick

    replay_only_eth(history_minutes=HISTORY_MINUTES)
    streams = list(ReplayStream.objects.filter(enabled=True))
    stack = request.getfixturevalue("stack_factory")()
    with psycopg.connect(database_url(), autocommit=True) as dba, psycopg.connect(database_url()) as locker:
        locker.execute("LOCK TABLE pressure_pressurebar IN SHARE MODE")  # held until locker.rollback()
        task_id = replay_tick.delay().id
        wait_for(lambda: _blocked_by(dba, locker.info.backend_pid), 60,
                 f"the worker never blocked on the bars table\n{stack.logs()}")
        [backend] = _blocked_by(dba, locker.info.backend_pid)
        # Mid-batch: the window is claimed and the trades are written, all uncommitted.
        modes = set(dba.execute(
            "SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE l.pid = %s AND l.granted", [backend]).fetchall())
        assert {("markets_trade", "RowExclusiveLock"), ("replay_replaystream", "RowExclusiveLock")} <= modes, modes
        assert dba.execute("SELECT backend_xid IS NOT NULL FROM pg_stat_activity WHERE pid = %s",
                           [backend]).fetchone() == (True,)
        assert_no_partial_batch_visible()
        assert not Trade.objects.exists()

        assert dba.execute("SELECT pg_terminate_backend(%s)", [backend]).fetchone() == (True,)
        wait_for(lambda: not dba.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend]).fetchall(),
                 10, "the backend did not go away")
        assert_no_partial_batch_visible()
        assert not Trade.objects.exists()
        assert set(ReplayStream.objects.values_list("clock_ms", flat=True)) == {-1}
        locker.rollback()  # release the bars table: the retry may go through

    retried = rf"{re.escape(TASK)}\[{task_id}\] retry: Retry in \d+s: OperationalError\('terminating connection"
    succeeded = rf"{re.escape(TASK)}\[{task_id}\] succeeded"
    deadline = time.monotonic() + 120
    while not _log_count(stack, succeeded):  # sample snapshots all the way through the retried run
        assert time.monotonic() < deadline, f"the retried task did not finish\n{stack.logs()}"
        stack.check_alive()
        assert_no_partial_batch_visible()
        time.sleep(0.1)
    assert _log_count(stack, retried) == 1, stack.logs()
    assert Trade.objects.exists()
    assert_no_partial_batch_visible()
    clocks_first = dict(ReplayStream.objects.filter(enabled=True).values_list("pk", "clock_ms"))
    assert min(clocks_first.values()) >= HISTORY_MINUTES * 60_000 - 5_000

    # The worker survived (same process, same pool) and goes on with the next tick.
    time.sleep(1.5)
    second = replay_tick.delay().id
    wait_for(lambda: _log_count(stack, rf"{re.escape(TASK)}\[{second}\] succeeded"), 60,
             f"the worker did not run the next tick\n{stack.logs()}")
    stack.check_alive()  # the one worker process, never restarted: no WorkerLostError either
    assert "WorkerLostError" not in (stack.tmp / "worker.log").read_text(errors="replace")
    assert_no_partial_batch_visible()
    clocks_second = dict(ReplayStream.objects.filter(enabled=True).values_list("pk", "clock_ms"))
    assert all(clocks_second[pk] > clocks_first[pk] for pk in clocks_first)
    stack.stop()
    faulted = _rows()

    # A clean run of the same two ticks (same windows, same stream order), in this process, no fault.
    ReplayStream.objects.update(clock_ms=-1)
    for model in (Trade, BookSample, PressureBar, SourceStatus):
        model.objects.all().delete()
    for clocks in (clocks_first, clocks_second):
        for stream in sorted(streams, key=lambda s: s.name):
            replay_advance(stream_id=stream.pk, until_ms=stream.anchor_ms + clocks[stream.pk], publish=False)
    clean = _rows()
    assert [len(faulted[k]) for k in faulted] == [len(clean[k]) for k in clean]
    for key in clean:
        assert faulted[key] == clean[key], key
