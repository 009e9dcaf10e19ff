"""The plotly.js the pages load can draw every figure the server builds."""

import re
from pathlib import Path

import plotly

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "static" / "vendor" / "plotly" / "plotly-finance.min.js"
# The finance partial bundle's trace modules (plotly.js dist/README.md).
FINANCE_TRACES = {"bar", "candlestick", "funnel", "funnelarea", "histogram", "indicator", "ohlc", "pie", "scatter",
                  "waterfall"}


def _version(path: Path) -> str:
    return re.search(r"plotly\.js (?:\([a-z -]+\) )?v(\d+\.\d+\.\d+)", path.read_text()[:400]).group(1)


def test_the_bundle_is_the_plotly_js_of_the_installed_python_package():
    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert _version(BUNDLE) == _version(bundled), "take the matching bundle: static/vendor/plotly/README.md"
    assert "(finance - minified)" in BUNDLE.read_text()[:200]


def test_every_trace_type_the_figures_use_is_in_the_bundle():
    used = set()
    for path in (ROOT / "apps").rglob("*.py"):
        used |= {name.lower() for name in re.findall(r"\bgo\.([A-Z][A-Za-z]+)\(", path.read_text())}
    used -= {"figure"}
    assert used, "no figure found: the scan is broken"
    assert used <= FINANCE_TRACES, f"not in the finance bundle: {used - FINANCE_TRACES}"
