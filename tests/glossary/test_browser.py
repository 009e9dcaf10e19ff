"""The term page's live chart in Debian Chromium, against Daphne, a Celery worker and beat."""

import shutil
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from apps.glossary.loader import glossary_load
from apps.pressure.models import PressureBar
from apps.replay.services import replay_streams_ensure

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is required for browser tests (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def _wait_for(predicate, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(message)


def test_term_page_chart_draws_and_extends_live(stack_factory, browser):
    glossary_load()  # an earlier transactional test may have flushed the migration's terms
    replay_streams_ensure(history_minutes=0)
    stack = stack_factory(beat=True, extra_env={"REPLAY_SPEED": "20"})
    _wait_for(lambda: PressureBar.objects.filter(interval="1m", instrument__symbol="BTCUSDT").exists(),
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
