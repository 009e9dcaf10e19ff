"""Static files as `make run` serves them (collected, STATIC_COLLECTED=1): hashed names, Brotli, cached for a
year; the instrument page loads the custom plotly.js bundle and draws its first chart from it."""

import os
import re
import subprocess
import sys

import pytest

from apps.replay.services import replay_advance, replay_streams_ensure
from tests.conftest import ROOT

pytestmark = pytest.mark.browser
YEAR = 365 * 24 * 3600


def test_static_files_are_hashed_compressed_and_cached_and_the_chart_draws(stack_factory, browser, tmp_path):
    collected = {"STATIC_COLLECTED": "1", "STATIC_ROOT": str(tmp_path / "static")}
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--no-input", "--verbosity", "0"], cwd=ROOT,
                   env={**os.environ, "DEBUG": "1", **collected}, check=True, timeout=600)
    for stream in replay_streams_ensure(history_minutes=10):
        replay_advance(stream_id=stream.pk, until_ms=stream.anchor_ms + 10 * 60_000, publish=False)
    stack = stack_factory(extra_env=collected)

    context = browser.new_context(viewport={"width": 1440, "height": 900})  # a fresh context: a cold cache
    page = context.new_page()
    static = []
    page.on("response", lambda r: static.append(r) if "/static/" in r.url else None)
    page.goto(stack.url + "/markets/binance-replay/spot/BTCUSDT/")
    page.wait_for_selector("#chart[data-ready='1'] .main-svg", timeout=30_000)
    assert page.evaluate("document.getElementById('chart').data[0].type") == "candlestick"
    assert page.evaluate("Plotly.version") == "4.1.1"

    names = {r.url.rsplit("/", 1)[-1]: r for r in static}
    assert any(n.startswith("plotly-custom.min.") for n in names), sorted(names)
    for name, response in names.items():
        headers = response.all_headers()
        assert re.search(r"\.[0-9a-f]{12}\.\w+$", name), f"{name}: no content hash in the name"
        max_age = int(re.search(r"max-age=(\d+)", headers["cache-control"]).group(1))
        assert max_age >= YEAR and "immutable" in headers["cache-control"], (name, headers["cache-control"])
        if name.endswith((".js", ".css")):
            assert headers.get("content-encoding") == "br", (name, headers.get("content-encoding"))
    sizes = page.evaluate("""(() => {
      const res = performance.getEntriesByType('resource');
      const nav = performance.getEntriesByType('navigation')[0];
      return {plotly: res.find((r) => r.name.includes('plotly-custom')).transferSize,
              total: nav.transferSize + res.reduce((a, r) => a + r.transferSize, 0),
              chart: performance.getEntriesByName('pw:chart-ready')[0].startTime};
    })()""")
    # The full plotly.min.js alone was 4.8 MB, served uncompressed.
    assert sizes["plotly"] < 400_000 and sizes["total"] < 600_000, sizes
    print(f"first chart {sizes['chart']:.0f} ms after navigation, {sizes['total'] / 1024:.0f} KiB transferred")

    # A second visit takes every static file from the browser's cache, without asking the server.
    static.clear()
    page.goto(stack.url + "/markets/binance-replay/spot/BTCUSDT/")
    page.wait_for_selector("#chart[data-ready='1'] .main-svg", timeout=30_000)
    fetched = page.evaluate("performance.getEntriesByType('resource').filter((r) => r.name.includes('/static/')"
                            " && r.transferSize > 0).map((r) => r.name)")
    assert not fetched, fetched
    context.close()
