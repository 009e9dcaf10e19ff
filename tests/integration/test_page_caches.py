"""Page caches (issue #9): cached bars, figures and overview rows are invalidated by a bar write.

Each test first shows that the page is served from the cache (a change made behind the write
path's back does not show), then writes through the write path and expects the new value at once.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from apps.markets.services import instrument_ensure
from apps.markets.validation import TradeRow
from apps.pressure.models import PressureBar
from apps.pressure.selectors import range_key

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


class _PinnedClock(datetime):
    """datetime with a fixed now(): pages take their range from the clock, and a minute turning between two
    requests would give the second one another cache key (a busy machine crossed one in CI)."""

    pinned = datetime(2026, 1, 1, tzinfo=UTC)

    @classmethod
    def now(cls, tz=None):
        return cls.pinned.astimezone(tz) if tz else cls.pinned.replace(tzinfo=None)


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch):
    _PinnedClock.pinned = datetime.now(tz=UTC).replace(second=30, microsecond=0)
    for module in ("pressureweb.lib.ranges", "apps.dashboard.views"):
        monkeypatch.setattr(f"{module}.datetime", _PinnedClock)


@pytest.fixture
def inst(flush_redis):
    cache.clear()
    return instrument_ensure(exchange_slug="cachetest", market="spot", symbol="CACHEUSDT", base="CACHE",
                             quote="USDT")


def _ingest(inst, *, price: str, minutes_ago: int, trade_id: int, capture) -> None:
    from apps.pressure.services import market_batch_ingest

    now = _PinnedClock.pinned.replace(second=0)
    t = int((now - timedelta(minutes=minutes_ago)).timestamp() * 1000) + 1000
    with capture(execute=True):  # the version bump runs on commit, as in production
        market_batch_ingest(instrument=inst, trades=[TradeRow(trade_id, t, price, "1.5", True)], source="test",
                            publish=False)


def _script(html: str, element_id: str):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no {element_id} in the page"
    return json.loads(match.group(1))


def _behind_the_write_path(inst, **fields) -> None:
    PressureBar.objects.filter(instrument=inst, interval="1m").update(**fields)


def test_instrument_page_bars_are_cached_and_a_bar_write_invalidates_them(client, inst,
                                                                            django_capture_on_commit_callbacks):
    _ingest(inst, price="100", minutes_ago=3, trade_id=1, capture=django_capture_on_commit_callbacks)
    url = inst.get_absolute_url() + "?range=1h"
    bars = _script(client.get(url).content.decode(), "bars-data")
    assert [b["close"] for b in bars] == ["100"]

    _behind_the_write_path(inst, close="123")
    assert _script(client.get(url).content.decode(), "bars-data")[0]["close"] == "100", "not served from the cache"

    _ingest(inst, price="250", minutes_ago=1, trade_id=2, capture=django_capture_on_commit_callbacks)
    page = client.get(url).content.decode()
    closes = [b["close"] for b in _script(page, "bars-data")]
    assert closes == ["123", "250"], "a bar write must invalidate the cached bars at once"
    assert '<span id="bar-count">2</span>' in page


def _cell(html: str, inst, field: str) -> str:
    row = re.search(rf'<tr data-instrument="{inst.pk}".*?</tr>', html, re.S)
    assert row, f"no row for {inst}"
    match = re.search(rf'data-field="{field}" data-value="([^"]*)">(.*?)</td>', row.group(0), re.S)
    assert match, f"no {field} cell"
    return match.group(2)


def test_overview_rows_are_cached_and_a_bar_write_invalidates_its_row(client, inst,
                                                                        django_capture_on_commit_callbacks):
    _ingest(inst, price="100", minutes_ago=2, trade_id=1, capture=django_capture_on_commit_callbacks)
    assert _cell(client.get("/").content.decode(), inst, "close") == "100.00 USDT"

    _behind_the_write_path(inst, close="123")
    assert _cell(client.get("/").content.decode(), inst, "close") == "100.00 USDT", "row not cached"

    _ingest(inst, price="250", minutes_ago=1, trade_id=2, capture=django_capture_on_commit_callbacks)
    page = client.get("/").content.decode()
    assert _cell(page, inst, "close") == "250.00 USDT"
    # No later trade has closed it and the quiet-market rule has not run: the newest bar is shown as forming.
    assert _cell(page, inst, "bucket_start").endswith('UTC <span class="forming">forming</span>')


def test_a_new_instrument_shows_on_the_overview_at_once(client, inst, django_capture_on_commit_callbacks):
    _ingest(inst, price="100", minutes_ago=2, trade_id=1, capture=django_capture_on_commit_callbacks)
    client.get("/")
    other = instrument_ensure(exchange_slug="cachetest", market="spot", symbol="OTHERUSDT", base="OTHER",
                              quote="USDT")
    assert f'data-instrument="{other.pk}"' in client.get("/").content.decode()


@pytest.mark.parametrize("interval", ["1m", "5m", "1h"])
def test_rounding_a_range_to_the_grid_never_changes_which_bars_it_holds(interval):
    from apps.pressure.models import INTERVALS

    step = INTERVALS[interval]
    grid = datetime(2026, 1, 1, tzinfo=UTC)
    bars = [grid + step * i for i in range(40)]
    for start_offset in (timedelta(0), timedelta(seconds=1), step - timedelta(milliseconds=1), step * 3):
        start = grid + start_offset
        end = start + step * 7 + timedelta(seconds=13)
        lo, hi = range_key(interval, start, end)
        inside = [b for b in bars if start <= b < end]
        rounded = [b for b in bars if lo <= b.timestamp() * 1000 < hi]
        assert inside == rounded


def test_while_one_request_rebuilds_a_page_after_a_write_others_get_the_previous_payload(
        client, inst, django_capture_on_commit_callbacks, monkeypatch):
    from pressureweb import payload_cache

    _ingest(inst, price="100", minutes_ago=3, trade_id=1, capture=django_capture_on_commit_callbacks)
    url = inst.get_absolute_url() + "?range=1h"
    assert [b["close"] for b in _script(client.get(url).content.decode(), "bars-data")] == ["100"]
    _ingest(inst, price="90", minutes_ago=2, trade_id=2, capture=django_capture_on_commit_callbacks)
    stored = cache._cache.get_client().keys(f"*barsjson:{inst.pk}:*")  # full keys: ":<version>:barsjson:..."
    rebuilding = [key.decode().split(":", 2)[2] for key in stored if not key.endswith(b":rebuild")]
    assert rebuilding, "the page's payload should be cached"
    for key in rebuilding:  # as if a concurrent request were rebuilding them right now
        cache.add(f"{key}:rebuild", 1, timeout=5)
    assert [b["close"] for b in _script(client.get(url).content.decode(), "bars-data")] == ["100"]
    for key in rebuilding:
        cache.delete(f"{key}:rebuild")
    assert [b["close"] for b in _script(client.get(url).content.decode(), "bars-data")] == ["100", "90"]

    # A previous payload older than STALE_SECONDS is never served, rebuilding or not.
    _ingest(inst, price="80", minutes_ago=1, trade_id=3, capture=django_capture_on_commit_callbacks)
    for key in rebuilding:
        cache.add(f"{key}:rebuild", 1, timeout=5)
    monkeypatch.setattr(payload_cache, "STALE_SECONDS", 0)
    assert [b["close"] for b in _script(client.get(url).content.decode(), "bars-data")] == ["100", "90", "80"]


@pytest.mark.usefixtures("flush_redis")
def test_without_a_stale_allowance_a_request_waits_for_the_rebuild_in_flight():
    import threading
    import time

    from pressureweb.payload_cache import cached_while_rebuilt

    cache.set("t:page", (1, time.time(), "version 1"))
    builds, first = [], []

    def slow_build():
        builds.append("first")
        time.sleep(0.4)
        return "version 2"

    thread = threading.Thread(target=lambda: first.append(cached_while_rebuilt("t:page", 2, slow_build,
                                                                               stale_seconds=0)))
    thread.start()
    time.sleep(0.1)  # the first request holds the rebuild
    second = cached_while_rebuilt("t:page", 2, lambda: builds.append("second") or "built again", stale_seconds=0)
    thread.join()
    assert first == ["version 2"] and second == "version 2"  # never version 1
    assert builds == ["first"]
