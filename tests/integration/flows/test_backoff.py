"""The flows' cross-worker back-off after a 429: the shared cache, the project's one policy."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from apps.flows.services import sources
from pressureweb.lib.http import SOURCE_BACKOFF

SOURCE = "esplora:backoff-test"


@pytest.fixture
def clock(monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(sources.time, "time", lambda: now[0])
    cache.delete(sources._backoff_key(SOURCE))
    yield now
    cache.delete(sources._backoff_key(SOURCE))


def test_retry_after_is_honoured_by_every_worker_until_it_runs_out(clock):
    assert sources.source_backing_off(source=SOURCE) == 0.0
    assert sources.source_backoff_set(source=SOURCE, retry_after=7.0) == 7.0
    assert sources.source_backing_off(source=SOURCE) == 7.0
    clock[0] += 6.5
    assert sources.source_backing_off(source=SOURCE) == pytest.approx(0.5)
    clock[0] += 0.5
    assert sources.source_backing_off(source=SOURCE) == 0.0


def test_without_retry_after_429s_in_a_row_back_off_longer_each_time(clock):
    waits = []
    for _ in range(6):
        waits.append(sources.source_backoff_set(source=SOURCE, retry_after=None))
        clock[0] += waits[-1]  # the next 429 comes right after the back-off ends
    # Nominal delays 1, 2, 4, 8, 16, 32 s with equal jitter (at least half), never under a second.
    for attempt, wait in enumerate(waits, start=1):
        nominal = SOURCE_BACKOFF.base_s * 2 ** (attempt - 1)
        assert max(1.0, nominal / 2) <= wait <= max(1.0, nominal), (attempt, wait)
    assert waits[-1] >= 16.0


def test_a_retry_after_of_zero_still_backs_off_a_second(clock):
    assert sources.source_backoff_set(source=SOURCE, retry_after=0.0) == 1.0
    assert sources.source_backing_off(source=SOURCE) == 1.0
