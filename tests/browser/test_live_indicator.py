"""The live indicator: "live" only while updates arrive; "stale · last update …" once none came for a few periods.

Daphne runs without a worker, so only the test pushes bars; the page's clock is Playwright's fake clock, paused and
moved forward by the test instead of waiting.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from apps.live.publish import bars_payload_send
from apps.markets.services import instrument_ensure
from tests.conftest import wait_for

pytestmark = pytest.mark.browser


def _bar(at: datetime) -> dict:
    return {"bucket_start": at.isoformat().replace("+00:00", "Z"), "open": "2500.1", "high": "2501.5",
            "low": "2499.0", "close": "2500.7", "trades": 3, "delta_base": "0.4"}


def _push(instrument_id: int, at: datetime) -> None:
    """A bar update through the channel layer, as the worker sends it (from a thread of its own: Playwright's
    sync API keeps an event loop running in this one)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(bars_payload_send, instrument_id=instrument_id, payload={"1m": [_bar(at)]}).result(10)


def test_the_indicator_turns_stale_when_updates_stop_and_live_when_one_arrives(stack_factory, browser, settings):
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="ETHUSDT", base="ETH", quote="USDT")
    stack = stack_factory(workers=0)
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.clock.install()
    page.goto(stack.url + inst.get_absolute_url())
    page.wait_for_selector("#conn-status[data-state='live']", timeout=15_000)
    status = page.locator("#conn-status")
    assert int(status.get_attribute("data-stale-after-ms")) == 5000 == settings.LIVE_STALE_SECONDS * 1000

    # Freeze the page's time, then push one update: it arrived "now" on the frozen clock.
    now_ms = page.evaluate("Date.now()")
    page.clock.pause_at(datetime.fromtimestamp(now_ms / 1000 + 0.05, tz=UTC))
    minute = datetime.now(tz=UTC).replace(second=0, microsecond=0)
    _push(inst.pk, minute)
    wait_for(lambda: page.inner_text("#last-update") == f"{minute:%Y-%m-%d %H:%M} UTC", 10, "the push never arrived")

    page.clock.fast_forward(4_000)
    assert (status.get_attribute("data-state"), status.inner_text()) == ("live", "live")
    page.clock.fast_forward(2_000)
    assert (status.get_attribute("data-state"), status.inner_text()) == ("stale", "stale · last update 6 s ago")
    page.clock.fast_forward("02:00")
    assert status.inner_text() == "stale · last update 2 min ago"

    _push(inst.pk, minute + timedelta(minutes=1))
    wait_for(lambda: status.get_attribute("data-state") == "live", 10, "an update did not bring 'live' back")
    assert status.inner_text() == "live"
    assert not errors, errors

