"""Faults the stack survives: a worker killed mid-task, beat started twice."""

import os
import signal
import time

import psutil
import pytest
from django.conf import settings
from django.db.models import Count

from apps.markets.models import Trade
from apps.pressure.models import PressureBar
from apps.pressure.services import minute_bars_compute
from apps.replay.models import ReplayStream
from apps.replay.recording import recording_load
from apps.replay.services import replay_streams_ensure

pytestmark = pytest.mark.integration


def _wait(predicate, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(message)


def expected_trades(stream: ReplayStream) -> set[tuple[int, int]]:
    """(trade id, time) of every recorded trade whose replay clock is in (-1, clock_ms], across loops."""
    rec = recording_load(tuple(str(settings.REPLAY_DIR / f) for f in stream.files), settings.BOOK_SAMPLE_INTERVAL_MS,
                         tuple(settings.BOOK_DEPTH_BANDS))
    out = set()
    for loop in range(stream.clock_ms // rec.period_ms + 1):
        base = loop * rec.period_ms
        for clock, trade_id in zip(rec.trade_clock.tolist(), rec.trade_ids.tolist(), strict=True):
            if clock + base <= stream.clock_ms:
                out.add((trade_id + loop * rec.id_span, stream.anchor_ms + base + clock))
    return out


def assert_equals_a_clean_run():
    for stream in ReplayStream.objects.select_related("instrument"):
        stored = set(Trade.objects.filter(instrument=stream.instrument).values_list("trade_id", "time_ms"))
        assert stored == expected_trades(stream), stream.name
        bars = {(b.bucket_start, b.trades, b.taker_sell_base) for b in
                PressureBar.objects.filter(instrument=stream.instrument, interval="1m")}
        clean = {(b["bucket_ms"], b["trades"], b["taker_sell_base"]) for b in minute_bars_compute(
            instrument=stream.instrument, start_ms=0, end_ms=2**62)}
        assert {(int(b[0].timestamp() * 1000), b[1], b[2]) for b in bars} == clean, stream.name


def test_worker_killed_mid_task_reruns_it_and_stores_exactly_a_clean_run(stack_factory):
    from apps.replay.tasks import replay_tick

    replay_streams_ensure(history_minutes=25)  # the first tick has 25 minutes of backlog per stream
    stack = stack_factory(pool="prefork")
    _wait(lambda: psutil.Process(stack.procs["worker"].pid).children(), 30, "no pool process")
    replay_tick.delay()
    _wait(lambda: Trade.objects.exists(), 60, f"the task never started\n{stack.logs()}")
    child = psutil.Process(stack.procs["worker"].pid).children()[0]
    os.kill(child.pid, signal.SIGKILL)  # mid-task: some minutes committed, one transaction cut off
    killed_at = Trade.objects.count()
    _wait(lambda: "WorkerLostError" in (stack.tmp / "worker.log").read_text(), 30, "the kill was not noticed")
    # The task is rejected back to the queue and runs again to the end.
    _wait(lambda: not ReplayStream.objects.filter(clock_ms__lt=25 * 60_000 - 5_000).exists(), 120,
          f"the task did not finish after the kill\n{stack.logs()}")
    time.sleep(1)
    assert Trade.objects.count() > killed_at
    assert not Trade.objects.values("instrument", "trade_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert_equals_a_clean_run()


def test_beat_started_twice_duplicates_nothing(stack_factory):
    replay_streams_ensure(history_minutes=1)
    stack = stack_factory(beat=2)
    _wait(lambda: Trade.objects.count() > 1000, 60, f"no replay\n{stack.logs()}")
    time.sleep(4)  # both beats sending a tick every second
    for proc in stack.procs.values():
        proc.send_signal(signal.SIGTERM)
    stack.stop()
    assert "replay_tick" in (stack.tmp / "beat2.log").read_text(), "the second beat should be scheduling too"
    assert_equals_a_clean_run()
