"""The term page's live chart in Debian Chromium, against Daphne, a Celery worker and beat."""


import pytest

from apps.glossary.loader import glossary_load
from apps.pressure.models import PressureBar
from apps.replay.services import replay_streams_ensure
from tests.conftest import wait_for

pytestmark = pytest.mark.browser






def test_term_page_chart_draws_and_extends_live(stack_factory, browser):
    glossary_load()  # an earlier transactional test may have flushed the migration's terms
    replay_streams_ensure(history_minutes=0)
    stack = stack_factory(beat=True, extra_env={"REPLAY_SPEED": "20"})
    wait_for(lambda: PressureBar.objects.filter(interval="1m", instrument__symbol="BTCUSDT").exists(),
              60, f"no bars from the replay\n{stack.logs()}")

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(stack.url + "/glossary/cumulative-volume-delta/")
    page.wait_for_selector("#term-chart[data-ready='1'] .main-svg", timeout=20_000)
    page.wait_for_selector("#conn-status[data-state='live']", timeout=15_000)
    page.wait_for_selector("#term-chart[data-live-updates]", timeout=30_000)
    points = page.evaluate("document.getElementById('term-chart').data[0].y")
    assert points and all(isinstance(v, int | float) for v in points)
    assert errors == []

    page.goto(stack.url + "/glossary/?q=CVD")
    assert page.locator("#search-results li").first.get_attribute("data-term") == "cumulative-volume-delta"
