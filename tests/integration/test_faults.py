"""Faults the stack survives under load (the replay of real Binance recordings through a real Celery worker).

After every fault the stored trades must be exactly the raw source rows up to each stream's replay clock (none
lost, none duplicated, every value equal) and every 1m/5m/1h bar must equal an independent Decimal recomputation
from the stored trades (tests/integrity.py). Kill points are found with probes, not sleeps: "mid-batch" means a
write transaction of the worker is open at the moment of the kill (PostgreSQL: a client backend holding a
transaction id; SQLite: the database write lock is taken).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time

import psutil
import psycopg
import pytest
import redis as redis_client
from django.db import connection

from apps.markets.models import Trade
from apps.replay.models import ReplayStream
from apps.replay.services import replay_streams_ensure
from tests.conftest import database_url, free_port, redis_start, wait_for
from tests.integrity import assert_replay_stored_exactly_the_source

pytestmark = pytest.mark.integration

KILLS = 5
CANNOT_CONNECT = "consumer: Cannot connect to redis"
CONNECTED = "Connected to redis"
RECOVERY_S = 120  # kombu's own bound for a stale broker connection is about 51 s (brpop_timeout + 2 x health check)
WHOLE_WORKER_KILL = 3  # the other kills hit the pool process only: a whole worker restarts slowly


class WriterProbe:
    """Tells whether another process holds an open write transaction on the test database, cheaply enough to
    poll every few milliseconds (one connection for the whole test)."""

    def __init__(self):
        if connection.vendor == "postgresql":
            self.conn = psycopg.connect(database_url(), autocommit=True)
        else:
            self.conn = sqlite3.connect(connection.settings_dict["NAME"], timeout=0, isolation_level=None)

    def active(self) -> bool:
        if connection.vendor == "postgresql":
            return bool(self.conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend' AND backend_xid IS NOT NULL").fetchall())
        try:
            self.conn.execute("BEGIN IMMEDIATE")  # fails at once while a writer holds the lock
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            return True
        self.conn.execute("ROLLBACK")
        return False

    def wait(self, ready, timeout: float, message: str) -> None:
        """Poll until `ready()` (checked now and then) holds and a write transaction is open right now."""
        deadline = time.monotonic() + timeout
        checked = 0.0
        while True:
            if time.monotonic() - checked > 0.2:
                is_ready, checked = ready(), time.monotonic()
            if is_ready and self.active():
                return
            assert time.monotonic() < deadline, message
            time.sleep(0.02)

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def writer_probe(transactional_db):
    probe = WriterProbe()
    yield probe
    probe.close()


def replay_only_eth(*, history_minutes: int) -> None:
    """The ETHUSDT stream alone: its recording parses in well under a second, in every (re)started worker
    process, where the three streams together take several seconds."""
    replay_streams_ensure(history_minutes=history_minutes)
    ReplayStream.objects.exclude(name="binance-spot-ethusdt").update(enabled=False)


def _clocks() -> dict[int, int]:
    return dict(ReplayStream.objects.filter(enabled=True).values_list("pk", "clock_ms"))


def _advanced(since: dict[int, int]) -> bool:
    now = _clocks()
    return all(now[pk] > clock for pk, clock in since.items())


def _ran_a_task_since_reconnect(log: str) -> bool:
    """A task the worker received after its last reconnection has finished."""
    after = log.rpartition(CONNECTED)[2]
    return any(f"[{task_id}] succeeded" in after for task_id in re.findall(r"\[([0-9a-f-]{36})\] received", after))


def _consumer_blocked(port: int) -> bool:
    """The worker's consumer is waiting in BRPOP on the broker right now (a client flagged blocked)."""
    client = redis_client.Redis(host="127.0.0.1", port=port, socket_timeout=1, retry=None)
    try:
        return any("b" in c.get("flags", "") for c in client.client_list())
    finally:
        client.close()


def _stacks(stack, pid: int) -> str:
    """The worker's log once its main process has dumped the stacks of its threads (celery's SIGUSR1 handler),
    for a worker that stopped noticing its broker."""
    os.kill(pid, signal.SIGUSR1)
    wait_for(lambda: "MainThread" in stack.log("worker"), 10, "no stack dump")
    return stack.log("worker")[-20_000:]


def test_redis_killed_and_restarted_five_times_under_load_the_worker_resumes_and_loses_nothing(
        stack_factory, writer_probe, tmp_path):
    """Celery's own Redis goes away mid-batch five times. The worker (prefork, 2 processes, as in the Procfile:
    with one task running and a BRPOP outstanding, which is what celery 5.7.0 could not survive) must stay the
    same process, reconnect by itself and go on replaying; beat keeps scheduling.

    Each kill waits for that state: a write transaction open and the consumer blocked in BRPOP. With every prefetch
    slot taken (no BRPOP outstanding) it notices too: 5 of 5 kills of a one-process worker, each within 0.1 s.

    In about 1 run in 10 the worker never noticed at all: its event loop was stuck in the worker heartbeat's publish,
    which celery retries forever with a blocking sleep while the broker is down (a stack dump showed it). The
    Procfile's worker runs without heartbeat, gossip and mingle, and so does this one (conftest reads the Procfile)."""
    port = free_port()
    redis = redis_start(port, tmp_path)
    try:
        replay_only_eth(history_minutes=0)  # the load: every tick replays 30 s of trades
        stack = stack_factory(beat=True, pool="prefork", concurrency=2, web=False,
                              extra_env={"REDIS_URL": f"redis://127.0.0.1:{port}/0", "REPLAY_SPEED": "30"})
        worker = stack.procs["worker"]
        for n in range(1, KILLS + 1):
            before = _clocks()
            deadline = time.monotonic() + 30
            while True:
                writer_probe.wait(lambda b=before: _advanced(b), 30,
                                  f"round {n}: the worker was never busy writing\n{stack.logs()}")
                if _consumer_blocked(port):
                    break
                assert time.monotonic() < deadline, f"round {n}: no BRPOP outstanding while a batch was written"
                time.sleep(0.005)
            failed, connected = stack.log("worker").count(CANNOT_CONNECT), stack.log("worker").count(CONNECTED)
            redis.kill()
            redis.wait(5)
            # Down until the worker has noticed and failed to reconnect at least once (usually within milliseconds;
            # the bound is the worker recovering by itself, not how fast).
            try:
                stack.wait_log("worker", CANNOT_CONNECT, count=failed + 1, timeout=RECOVERY_S)
            except AssertionError:
                raise AssertionError(f"round {n}: no reconnect attempt logged\n{_stacks(stack, worker.pid)}") from None
            redis = redis_start(port, tmp_path)
            stack.wait_log("worker", CONNECTED, count=connected + 1, timeout=RECOVERY_S)
            wait_for(lambda: _ran_a_task_since_reconnect(stack.log("worker")), RECOVERY_S,
                     f"round {n}: the worker did not consume again\n{stack.logs()}")
        stack.check_alive()
        assert stack.procs["worker"] is worker, "the worker was restarted"
        assert "Unrecoverable error" not in stack.log("worker"), stack.logs()
        stack.stop()  # warm shutdown: the running tick finishes
        assert worker.returncode == 0, stack.logs()
    finally:
        redis.kill()
    assert assert_replay_stored_exactly_the_source() > 5_000


def _kill_tree(pid: int) -> None:
    proc = psutil.Process(pid)
    for p in [*proc.children(recursive=True), proc]:
        p.send_signal(signal.SIGKILL)
    psutil.wait_procs([proc], timeout=10)


def test_worker_killed_mid_batch_five_times_reruns_the_task_and_loses_nothing(stack_factory, writer_probe):
    """One replay tick with a 15-minute backlog (15 one-minute batches) is killed mid-batch five times: four
    times its pool process (the task is requeued at once: acks_late + reject_on_worker_lost), once the whole
    worker, which is started again (as a supervisor would) and gets the unacknowledged task back after the
    visibility timeout. Every killed batch rolls back whole; the task goes on from the last committed batch."""
    from apps.replay.tasks import replay_tick

    history = 15
    replay_only_eth(history_minutes=history)
    stack = stack_factory(pool="prefork", web=False, extra_env={"CELERY_VISIBILITY_TIMEOUT": "2"})
    replay_tick.delay()
    killed_at = -1
    for n in range(1, KILLS + 1):
        writer_probe.wait(lambda k=killed_at: Trade.objects.count() > k, 60,
                          f"kill {n}: no batch in progress after the last kill\n{stack.logs()}")
        main = stack.procs["worker"].pid
        if n == WHOLE_WORKER_KILL:
            _kill_tree(main)
            stack.spawn_worker()
        else:
            lost = stack.log("worker").count("WorkerLostError")
            [child] = psutil.Process(main).children()
            os.kill(child.pid, signal.SIGKILL)
            stack.wait_log("worker", "WorkerLostError", count=lost + 1)
        killed_at = Trade.objects.count()
    # The one tick never finished before the kills: its first success is the rerun going through to the end.
    stack.wait_log("worker", "] succeeded in", timeout=120)
    assert not ReplayStream.objects.filter(enabled=True, clock_ms__lt=history * 60_000 - 5_000).exists()
    stack.stop()
    assert Trade.objects.count() > killed_at
    assert assert_replay_stored_exactly_the_source() > 10_000


def test_beat_started_twice_duplicates_nothing(stack_factory):
    replay_only_eth(history_minutes=2)
    stack = stack_factory(beat=2, web=False)
    wait_for(lambda: Trade.objects.count() > 1000, 60, f"no replay\n{stack.logs()}")
    stack.wait_log("beat2", "replay_tick", count=4)  # the second beat is scheduling too
    stack.wait_log("beat", "replay_tick", count=4)
    stack.stop()
    assert assert_replay_stored_exactly_the_source() > 1000
