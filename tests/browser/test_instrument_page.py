"""Playwright driving Debian Chromium against Daphne, a Celery worker and beat."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from apps.pressure.models import Episode, PressureBar
from apps.replay.services import replay_streams_ensure
from tests.conftest import wait_for

pytestmark = pytest.mark.browser
# The README's picture, taken again only when asked (README_SCREENSHOT=1): a test run leaves the tree as it was.
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "instrument-page.png"
PANELS = ("chart", "chart-volume", "chart-ratio", "chart-cvd", "chart-imbalance", "chart-spread")
SPOT = "/markets/binance-replay/spot/BTCUSDT/"


def draw_every_panel(page) -> None:
    """Scroll each panel near the screen (each is drawn only then) and wait until it is drawn."""
    for panel in PANELS:
        page.locator(f"#{panel}").scroll_into_view_if_needed()
        page.wait_for_selector(f"#{panel}[data-ready='1'] .main-svg", timeout=20_000)


def test_each_panel_is_a_figure_drawn_near_the_screen_redrawn_live_and_zoomed_with_the_others(stack_factory, browser):
    """The replay's instrument page, live: its candlestick chart fills from the page's bars and new bars arrive
    over the socket without a reload. The six panels are figures of their own: one far below the screen is not drawn
    until it comes near; those near it follow the live bars (the forming bar moves, final bars are appended), each
    with the episode shading; a zoom in one applies to all, and autoscale brings them back to following the bars."""
    streams = replay_streams_ensure(history_minutes=0)
    spot = next(s.instrument for s in streams if s.instrument.market == "spot" and s.instrument.symbol == "BTCUSDT")
    now = datetime.now(tz=UTC).replace(second=0, microsecond=0)
    Episode.objects.create(instrument=spot, start=now - timedelta(minutes=8), confirmed_at=now, peak_time=now,
                           peak_spi=83.5, bars=8, drawdown=0.0123, source="mixed")
    stack = stack_factory(beat=True, extra_env={"REPLAY_SPEED": "20"})
    wait_for(lambda: PressureBar.objects.filter(interval="1m", instrument=spot).count() >= 2, 60,
             f"no bars from the replay\n{stack.logs()}")

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(stack.url + SPOT)
    page.wait_for_selector("#chart[data-ready='1'] .main-svg", timeout=20_000)
    assert page.locator(".badge.replay").first.is_visible()
    page.evaluate("window.__notReloaded = true")
    assert page.evaluate("document.getElementById('chart').data[0].type") == "candlestick"
    assert page.evaluate("document.getElementById('chart').data[0].close.every(v => v > 10000)")
    page.wait_for_selector("#conn-status[data-state='live']", timeout=15_000)
    assert page.get_attribute("#chart-spread", "data-ready") is None, "a panel far below the screen was drawn"

    last = "(id) => { const d = document.getElementById(id).data[0]; return [d.x.length, d.x.at(-1), " \
           "d.close ? d.close.at(-1) : d.y.at(-1)]; }"
    seen = {"moved": False, "appended": False, "labelled": False}
    _, first_x, first_close = before = page.evaluate(last, "chart")

    def live() -> bool:
        nonlocal before
        now_ = page.evaluate(last, "chart")
        if now_[1] == before[1] and now_[2] != before[2]:
            seen["moved"] = True  # the forming bar, redrawn with its new values
        if now_[0] > before[0] or now_[1] > before[1]:
            seen["appended"] = True
        seen["labelled"] |= page.evaluate(
            "document.getElementById('chart').layout.annotations.some((a) => a.text === 'forming')")
        before = now_
        return all(seen.values())

    wait_for(live, 60, f"the price panel did not follow the live bars: {seen}")
    assert (before[1], before[2]) != (first_x, first_close)
    assert page.evaluate("window.__notReloaded === true")
    assert int(page.get_attribute("#chart", "data-live-updates")) >= 1
    # A panel near the screen follows the same bars.
    wait_for(lambda: page.evaluate(last, "chart-volume")[1] == page.evaluate(last, "chart")[1], 10,
             "the volume panel did not follow the live bars")

    draw_every_panel(page)  # the price panel is now off the screen: not redrawn until it comes back
    newest = "document.getElementById('last-update').textContent.slice(0, 16)"
    wait_for(lambda: page.evaluate(last, "chart-spread")[1].replace("T", " ")[:16] == page.evaluate(newest), 10,
             "the spread panel, drawn late, does not follow the newest bar")
    shaded = page.evaluate("(ids) => ids.map((id) => document.getElementById(id).layout.shapes"
                           ".some((s) => s.type === 'rect' && s.fillcolor === 'rgba(239,83,80,0.10)'))", list(PANELS))
    assert all(shaded), dict(zip(PANELS, shaded, strict=True))

    # Each panel's time axis range, to the second (Plotly may write a date with a space for the T).
    ranges = "(ids) => ids.map((id) => document.getElementById(id)._fullLayout.xaxis.range" \
             ".map((v) => String(v).replace('T', ' ').slice(0, 19)))"
    x = [v.replace("T", " ")[:19] for v in page.evaluate("document.getElementById('chart').data[0].x")]
    zoom = [x[0], x[len(x) // 2]]
    page.evaluate("(r) => Plotly.relayout('chart-volume', {'xaxis.range': r})", zoom)
    wait_for(lambda: all(r == zoom for r in page.evaluate(ranges, list(PANELS))), 10,
             f"a zoom did not apply to every panel: {page.evaluate(ranges, list(PANELS))}")
    page.evaluate("Plotly.relayout('chart-ratio', {'xaxis.autorange': true})")

    def following() -> bool:
        got = page.evaluate(ranges, list(PANELS))
        newest = page.evaluate("document.getElementById('chart').data[0].x.at(-1)").replace("T", " ")[:19]
        return len({tuple(r) for r in got}) == 1 and got[0][1] > newest

    wait_for(following, 10, "autoscale did not bring every panel back to following the bars: "
             f"{page.evaluate(ranges, list(PANELS))}")
    assert not errors, errors


def test_readme_screenshot_of_an_instrument_page_with_an_hour_of_history(stack_factory, browser, tmp_path):
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
    draw_every_panel(page)  # each drawn when it comes near the screen
    page.locator("#spi-chart").scroll_into_view_if_needed()
    page.wait_for_selector("#spi-chart .main-svg", timeout=20_000)
    assert page.evaluate("document.getElementById('chart').data[0].x.length") >= 55
    assert page.evaluate("document.getElementById('spi-chart').data[0].y.filter(v => v !== null).length") >= 20
    assert page.locator("#spi-explain").is_visible()
    assert not errors, errors
    assert page.locator("#range-note").is_hidden()  # an hour of history fills the 1h range
    picture = SCREENSHOT if os.environ.get("README_SCREENSHOT") == "1" else tmp_path / SCREENSHOT.name
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top of the picture, not across a chart
    page.screenshot(path=str(picture), full_page=True)
    assert picture.stat().st_size > 50_000  # a page with its charts, not a blank one

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
