"""First chart on a cold browser cache: `python -m bench.first_chart [URL] [--runs N]` against a running server
(`make run`), in Debian Chromium at 1440x900, each run in a fresh browser context (empty HTTP cache).

Prints, per run and as medians, the milliseconds from navigation to the first byte, to DOMContentLoaded and to
the instrument page's first chart (static/js/instrument.js marks "pw:chart-ready" when the price chart is drawn),
and the bytes transferred (the page, plotly.js and everything else).
"""

from __future__ import annotations

import argparse
import statistics

from playwright.sync_api import sync_playwright

MEASURE = """(() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const chart = performance.getEntriesByName('pw:chart-ready')[0];
  const res = performance.getEntriesByType('resource');
  const plotly = res.find((r) => r.name.includes('/plotly'));
  return {ttfb: nav.responseStart, dcl: nav.domContentLoadedEventStart, chart: chart ? chart.startTime : null,
          plotly_kb: plotly ? plotly.transferSize / 1024 : null,
          total_kb: (nav.transferSize + res.reduce((a, r) => a + r.transferSize, 0)) / 1024};
})()"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8000/markets/binance-replay/spot/BTCUSDT/")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        rows = []
        for _ in range(args.runs):
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            page = context.new_page()
            page.goto(args.url)
            page.wait_for_selector("#chart[data-ready='1'] .main-svg", timeout=60_000)
            rows.append(page.evaluate(MEASURE))
            context.close()
        browser.close()
    for row in rows:
        print("  ".join(f"{k} {v:,.0f}" for k, v in row.items() if v is not None))
    print("median  " + "  ".join(f"{k} {statistics.median(r[k] for r in rows):,.0f}"
                                 for k in ("ttfb", "dcl", "chart", "plotly_kb", "total_kb")))


if __name__ == "__main__":
    main()
