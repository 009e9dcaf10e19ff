"""Playwright driving Debian Chromium against Daphne, a Celery worker and beat."""

from pathlib import Path

import pytest

from apps.pressure.models import PressureBar
from apps.replay.services import replay_streams_ensure
from tests.conftest import wait_for

pytestmark = pytest.mark.browser
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "instrument-page.png"


def test_instrument_page_shows_charts_and_new_bars_arrive_live(stack_factory, browser):
    replay_streams_ensure(history_minutes=0)
    # Fast-forward the replay so new one-minute bars appear every few seconds.
    stack = stack_factory(beat=True, extra_env={"REPLAY_SPEED": "20"})
    wait_for(lambda: PressureBar.objects.filter(interval="1m", instrument__symbol="BTCUSDT").count() >= 2,
              60, f"no bars from the replay\n{stack.logs()}")

    page = browser.new_page(viewport={"width": 1400, "height": 1250})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(stack.url + "/markets/binance-replay/spot/BTCUSDT/")
    page.wait_for_selector("#chart[data-ready='1'] .main-svg", timeout=20_000)
    assert page.locator(".badge.replay").first.is_visible()
    page.evaluate("window.__notReloaded = true")
    initial = page.evaluate("document.getElementById('chart').data[0].x.length")
    assert initial >= 1
    assert page.evaluate("document.getElementById('chart').data[0].close.every(v => v > 10000)")
    page.wait_for_selector("#conn-status[data-state='live']", timeout=15_000)

    # Polled from here: an in-page wait_for_function would need eval, which our CSP forbids.
    wait_for(lambda: page.evaluate("document.getElementById('chart').data[0].x.length") > initial, 45,
              "no new bar arrived live")
    assert page.evaluate("window.__notReloaded === true")
    assert int(page.get_attribute("#chart", "data-live-updates")) >= 1
    assert page.locator(".js-plotly-plot .candlestick, .js-plotly-plot .trace.boxes").count() >= 1 or \
        page.evaluate("document.getElementById('chart').data[0].type") == "candlestick"
    assert not errors, errors


def test_readme_screenshot_of_an_instrument_page_with_an_hour_of_history(stack_factory, browser):
    """The README's picture: the page as a user sees it after `make run` (an hour of REPLAY history)."""
    from apps.replay.services import replay_advance

    streams = {s.name: s for s in replay_streams_ensure(history_minutes=60)}
    for name in ("binance-spot-btcusdt", "binance-usdm-btcusdt"):
        replay_advance(stream_id=streams[name].pk, until_ms=streams[name].anchor_ms + 60 * 60_000, publish=False)
    stack = stack_factory()
    page = browser.new_page(viewport={"width": 1400, "height": 1250})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(stack.url + "/markets/binance-replay/spot/BTCUSDT/")
    page.wait_for_selector("#chart[data-ready='1'] .main-svg", timeout=20_000)
    page.locator("#spi-chart").scroll_into_view_if_needed()  # drawn when it comes near the screen
    page.wait_for_selector("#spi-chart .main-svg", timeout=20_000)
    assert page.evaluate("document.getElementById('chart').data[0].x.length") >= 55
    assert page.evaluate("document.getElementById('spi-chart').data[0].y.filter(v => v !== null).length") >= 20
    assert page.locator("#spi-explain").is_visible()
    assert not errors, errors
    assert page.locator("#range-note").is_hidden()  # an hour of history fills the 1h range
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # 24 hours asked, one stored: the page says where the data starts instead of looking like the 1h chart.
    page.goto(stack.url + "/markets/binance-replay/spot/BTCUSDT/?range=24h")
    page.wait_for_selector("#chart[data-ready='1'] .main-svg", timeout=20_000)
    first = page.evaluate("document.getElementById('chart').data[0].x[0]")
    note = page.inner_text("#range-note")
    assert note == (f"Stored bars in this range start at {first[:16].replace('T', ' ')} UTC; "
                    "nothing is stored before that.")
    page.goto(stack.url + "/markets/binance-replay/spot/BTCUSDT/?range=1h&interval=1h")
    assert "1h bars over a 1h range show at most a few bars" in page.inner_text("main")


def test_overview_lists_instruments_and_updates_live(stack_factory, browser):
    replay_streams_ensure(history_minutes=0)
    stack = stack_factory(beat=True)
    wait_for(lambda: PressureBar.objects.filter(interval="1m").values("instrument").distinct().count() == 3,
              60, f"no bars from the replay\n{stack.logs()}")
    page = browser.new_page()
    page.goto(stack.url + "/")
    assert page.locator("#overview tbody tr").count() == 3
    page.wait_for_selector("#conn-status[data-state='live']", timeout=15_000)
    page.wait_for_selector("#overview tr.flash", timeout=20_000, state="attached")
    assert "REPLAY" in page.inner_text("#overview")
