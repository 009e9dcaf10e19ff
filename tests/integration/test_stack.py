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
