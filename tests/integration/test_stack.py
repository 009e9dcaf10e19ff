"""The real stack: Daphne, a Celery worker and beat as subprocesses on Redis and the test DB."""

import json
import time
import urllib.request

import pytest

from apps.pressure.models import PressureBar
from apps.replay.services import replay_streams_ensure

pytestmark = pytest.mark.integration


def _get_json(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_beat_and_worker_drive_the_replay_and_healthz_reports_everything_up(stack_factory):
    replay_streams_ensure(history_minutes=2)
    stack = stack_factory(beat=True)
    deadline = time.monotonic() + 60
    status, report = _get_json(stack.url + "/healthz")
    while time.monotonic() < deadline:
        status, report = _get_json(stack.url + "/healthz")
        bars = PressureBar.objects.filter(interval="1m").count()
        if status == 200 and bars and len(report["sources"]) == 3:
            break
        stack.check_alive()
        time.sleep(0.5)
    assert status == 200, (report, stack.logs())
    assert report["database"]["ok"] and report["redis"]["ok"]
    assert report["celery_worker"]["ok"] and report["celery_beat"]["ok"]
    assert set(report["sources"]) == {"replay:binance-spot-btcusdt", "replay:binance-spot-ethusdt",
                                      "replay:binance-usdm-btcusdt"}
    assert all(s["trades_inserted"] > 0 for s in report["sources"].values())
    assert PressureBar.objects.filter(interval="1m").exists()


def test_healthz_is_503_without_worker_and_beat(stack_factory, settings):
    stack = stack_factory(beat=False)
    stack.procs["worker"].terminate()
    stack.procs["worker"].wait(10)
    del stack.procs["worker"]
    status, report = _get_json(stack.url + "/healthz")
    assert status == 503
    assert report["database"]["ok"] and not report["celery_beat"]["ok"]


@pytest.mark.django_db
def test_health_needs_a_fresh_heartbeat_from_the_worker_and_from_beat(client):
    """State transitions of /healthz in one process: each heartbeat counts only while it is fresh."""
    from django.core.cache import cache

    from apps.health.selectors import STALE_AFTER_S
    from apps.health.tasks import BEAT_KEY, WORKER_KEY

    now = time.time()
    cases = [(now, now, 200), (now - STALE_AFTER_S - 1, now, 503), (now, now - STALE_AFTER_S - 1, 503),
             (None, now, 503), (now, None, 503)]
    for worker, beat, expected in cases:
        for key, value in ((WORKER_KEY, worker), (BEAT_KEY, beat)):
            cache.delete(key) if value is None else cache.set(key, value, timeout=None)
        resp = client.get("/healthz")
        report = resp.json()
        assert resp.status_code == expected, (worker, beat, report)
        assert report["celery_worker"]["ok"] == (worker is not None and worker > now - STALE_AFTER_S)
        assert report["celery_beat"]["ok"] == (beat is not None and beat > now - STALE_AFTER_S)
