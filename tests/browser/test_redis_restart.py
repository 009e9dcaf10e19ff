"""Redis restarted under a live page: the browser reconnects and catches up with no gap; Celery resumes."""

import itertools
import time
from datetime import datetime, timedelta

import pytest

from apps.pressure.models import PressureBar
from apps.replay.services import replay_streams_ensure
from tests.conftest import free_port, redis_start, wait_for

pytestmark = pytest.mark.browser


def test_browser_reconnects_and_catches_up_after_a_redis_restart(stack_factory, browser, tmp_path):
    port = free_port()
    redis = redis_start(port, tmp_path)
    try:
        replay_streams_ensure(history_minutes=0)
        stack = stack_factory(beat=True, extra_env={"REDIS_URL": f"redis://127.0.0.1:{port}/0", "REPLAY_SPEED": "20"})
        btc = lambda: PressureBar.objects.filter(interval="1m", instrument__symbol="BTCUSDT",  # noqa: E731
                                                 instrument__market="spot")
        wait_for(lambda: btc().count() >= 1, 60, f"no bars\n{stack.logs()}")
        page = browser.new_page()
        page.goto(stack.url + "/markets/binance-replay/spot/BTCUSDT/")
        page.wait_for_selector("#conn-status[data-state='live']", timeout=20_000)
        page.evaluate("window.__notReloaded = true")

        redis.kill()
        redis.wait(5)
        states = []
        for _ in range(16):
            states.append(page.get_attribute("#conn-status", "data-state"))
            time.sleep(0.25)
        assert "down" in states or "connecting" in states, f"the page did not notice the outage: {states}"
        during = btc().count()
        redis = redis_start(port, tmp_path)
        # Celery resumes: the replay writes new bars again.
        wait_for(lambda: btc().count() > during + 1, 60, f"Celery did not resume\n{stack.logs()}")
        page.wait_for_selector("#conn-status[data-state='live']", timeout=60_000)
        wait_for(lambda: page.evaluate("document.getElementById('chart').data[0].x.length") >= 4, 60,
                  "the chart did not keep updating")
        time.sleep(3)
        xs = page.evaluate("document.getElementById('chart').data[0].x")
        assert page.evaluate("window.__notReloaded === true")
        # No gap: every minute between the first and last bar on the chart is there, as in the database.
        shown = [datetime.fromisoformat(x.replace("Z", "+00:00")) for x in xs]
        stored = set(btc().filter(bucket_start__gte=shown[0], bucket_start__lte=shown[-1])
                     .values_list("bucket_start", flat=True))
        assert set(shown) == stored
        assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(shown))
    finally:
        redis.kill()
