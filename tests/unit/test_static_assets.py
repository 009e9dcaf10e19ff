"""The plotly.js the pages load can draw every figure the server builds."""

import re
from pathlib import Path

import plotly

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "static" / "vendor" / "plotly" / "plotly-custom.min.js"


def _bundled_traces() -> set[str]:
    """The trace types the custom bundle was built with, from its header (static/vendor/plotly/build.mjs)."""
    return set(re.search(r"\* traces: ([a-z, ]+)\n", BUNDLE.read_text()[:400]).group(1).split(", "))


def _version(path: Path) -> str:
    return re.search(r"plotly\.js (?:\([a-z -]+\) )?v(\d+\.\d+\.\d+)", path.read_text()[:400]).group(1)


def test_the_bundle_is_the_plotly_js_of_the_installed_python_package():
    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert _version(BUNDLE) == _version(bundled), "rebuild the bundle: static/vendor/plotly/README.md"
    head = BUNDLE.read_text()[:400]
    assert "(custom - minified)" in head
    # Chrome compiles the bundle off the main thread while it downloads (static/vendor/plotly/README.md).
    assert head.startswith("//# allFunctionsCalledOnLoad\n")


def test_every_trace_type_the_figures_use_is_in_the_bundle():
    used = set()
    for path in (ROOT / "apps").rglob("*.py"):
        used |= {name.lower() for name in re.findall(r"\bgo\.([A-Z][A-Za-z]+)\(", path.read_text())}
    used -= {"figure"}
    assert used, "no figure found: the scan is broken"
    bundled = _bundled_traces()
    assert used <= bundled, f"not in the bundle (rebuild it: static/vendor/plotly/README.md): {used - bundled}"
    # Each listed trace is registered in the bundle (its module's name, as plotly.js registers it).
    text = BUNDLE.read_text()
    for trace in bundled:
        assert re.search(rf'name:"{trace}"', text), trace
