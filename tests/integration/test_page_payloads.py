"""Page payloads: per-version caching in Redis and in process memory (pressureweb/payload_cache.py), and ready
script elements spliced into rendered pages (pressureweb/page_payloads.py)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import RequestFactory, override_settings
from django.utils.html import json_script

from pressureweb.page_payloads import render_with_payloads, script_element
from pressureweb.payload_cache import cached_while_rebuilt, process_payloads, version_bump, version_get

pytestmark = [pytest.mark.integration]


@pytest.fixture
def clean(flush_redis):
    process_payloads.clear()
    yield
    process_payloads.clear()


def _builder(log: list, value):
    def build():
        log.append(value)
        return value
    return build


@pytest.mark.usefixtures("clean")
def test_a_payload_comes_from_process_memory_while_its_version_holds():
    version = version_get("t:version", what="test")
    built: list = []
    assert cached_while_rebuilt("t:payload", version, _builder(built, "one")) == "one"
    cache.delete("t:payload")  # gone from Redis: only this process still has it
    assert cached_while_rebuilt("t:payload", version, _builder(built, "two")) == "one"
    assert built == ["one"]

    version_bump("t:version")
    assert cached_while_rebuilt("t:payload", version_get("t:version", what="test"), _builder(built, "three")) == "three"
    assert built == ["one", "three"]


@pytest.mark.usefixtures("clean")
def test_a_payload_built_longer_ago_than_its_redis_copy_lives_is_built_again():
    """A write that moved no version (raw SQL, a data migration) shows within CACHE_SECONDS, as without this layer."""
    from pressureweb.payload_cache import CACHE_SECONDS

    version = version_get("t:version", what="test")
    process_payloads.put("t:payload", version, "old", built_at=time.time() - CACHE_SECONDS - 1)
    assert cached_while_rebuilt("t:payload", version, _builder([], "new")) == "new"
    process_payloads.put("t:payload", version, "recent", built_at=time.time() - CACHE_SECONDS + 5)
    assert cached_while_rebuilt("t:payload", version, _builder([], "newer")) == "recent"


@pytest.mark.usefixtures("clean")
def test_another_process_sees_the_payload_through_redis():
    version = version_get("t:version", what="test")
    cached_while_rebuilt("t:payload", version, _builder([], "from elsewhere"))
    process_payloads.clear()  # a process that never built it
    built: list = []
    assert cached_while_rebuilt("t:payload", version, _builder(built, "built again")) == "from elsewhere"
    assert built == []


@pytest.mark.usefixtures("clean")
def test_versions_never_repeat_after_redis_loses_its_counters():
    """A web process keeps payloads under their versions; a restarted counter must not reach one of them."""
    before = version_get("t:version", what="test")
    for _ in range(3):
        version_bump("t:version")
    cached_while_rebuilt("t:payload", version_get("t:version", what="test"), _builder([], "before the restart"))
    cache.clear()  # Redis restarted empty

    after = version_get("t:version", what="test")
    assert after > before + 3
    assert cached_while_rebuilt("t:payload", after, _builder([], "rebuilt")) == "rebuilt"

    cache.clear()
    version_bump("t:version")  # a bump of a lost counter starts it afresh, also past every old version
    assert version_get("t:version", what="test") > after


@pytest.mark.usefixtures("clean")
@override_settings(PAGE_PAYLOADS_PROCESS_MB=1)
def test_process_memory_keeps_to_its_budget_dropping_the_least_recently_used():
    third = 1024 * 1024 // 3 + 1
    for name in ("a", "b"):
        process_payloads.put(name, 1, script_element("x" * third, f"el-{name}"), built_at=time.time())
    assert process_payloads.get("a", 1) is not None  # a is now the most recently used
    process_payloads.put("c", 1, script_element("x" * third, "el-c"), built_at=time.time())
    assert process_payloads.get("b", 1) is None
    assert process_payloads.get("a", 1) is not None and process_payloads.get("c", 1) is not None
    process_payloads.put("huge", 1, script_element("x" * 2 * 1024 * 1024, "el-huge"), built_at=time.time())
    assert process_payloads.get("huge", 1) is None  # over the whole budget: not kept


def test_a_script_element_holds_the_same_json_as_json_script():
    data = {"when": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "amount": Decimal("1.2300"),
            "text": "</script><script>alert(1)</script> & more", "nested": [{"a": 1.5e-7, "b": None}], "n": 3}
    element = script_element(data, "payload-test").element.decode()
    expected = str(json_script(data, "payload-test"))
    pattern = re.compile(r'<script id="payload-test" type="application/json">(.*)</script>$', re.S)
    assert json.loads(pattern.match(element).group(1)) == json.loads(pattern.match(expected).group(1))
    assert "</script><script>" not in element and element.count("</script>") == 1
    with pytest.raises(ValueError, match="not an element id"):
        script_element(data, 'x"><script>')


LOCMEM_TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "OPTIONS": {"loaders": [("django.template.loaders.locmem.Loader", {
        "page.html": "<p>{{ note }}</p>{{ first.script }}<div>{{ second.script }}</div>{{ first.script }}",
    })]},
}]


@override_settings(TEMPLATES=LOCMEM_TEMPLATES)
def test_render_with_payloads_puts_each_element_where_its_marker_is_and_only_there():
    first, second = script_element([1, 2, 3], "first"), script_element({"é": "ü"}, "second")
    note = first.marker  # user text that looks like a marker is escaped, so never replaced
    response = render_with_payloads(RequestFactory().get("/"), "page.html",
                                    {"note": note, "first": first, "second": second}, payloads=[first, second, None])
    body = response.content.decode()
    assert body == (f"<p>&lt;!--payload:first--&gt;</p>{first.element.decode()}<div>{second.element.decode()}</div>"
                    f"{first.element.decode()}")
    assert response["Content-Type"] == "text/html; charset=utf-8"


@pytest.mark.django_db(transaction=True)
def test_a_bar_written_anywhere_shows_at_once_on_a_page_another_process_has_in_memory(stack_factory):
    """Daphne keeps the instrument page's bars in its memory; a write by this process moves the version on."""
    from apps.markets.services import instrument_ensure
    from apps.markets.validation import TradeRow
    from apps.pressure.models import PressureBar
    from apps.pressure.services import market_batch_ingest

    inst = instrument_ensure(exchange_slug="payloadtest", market="spot", symbol="PAYUSDT", base="PAY", quote="USDT")
    now = datetime.now(tz=UTC).replace(second=0, microsecond=0)

    def ingest(price: str, minutes_ago: int, trade_id: int) -> None:
        t = int((now - timedelta(minutes=minutes_ago)).timestamp() * 1000) + 1000
        market_batch_ingest(instrument=inst, trades=[TradeRow(trade_id, t, price, "1", False)], source="test",
                            publish=False)

    ingest("100", 3, 1)
    stack = stack_factory()

    def closes() -> list[str]:
        with urllib.request.urlopen(stack.url + inst.get_absolute_url() + "?range=1h", timeout=10) as resp:
            html = resp.read().decode()
        found = re.search(r'<script id="bars-data" type="application/json">(.*?)</script>', html, re.S)
        return [bar["close"] for bar in json.loads(found.group(1))]

    assert closes() == ["100"]
    # Changed behind the write path (no version bump) and gone from Redis: only Daphne's memory has "100".
    PressureBar.objects.filter(instrument=inst).update(close="123")
    raw = cache._cache.get_client()
    stored = raw.keys(f"*barsjson:{inst.pk}:*")
    assert stored
    raw.delete(*stored)
    assert closes() == ["100"]

    ingest("90", 2, 2)
    assert closes() == ["123", "90"]
