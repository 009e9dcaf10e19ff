"""The patches to ccxt internals are pinned: a ccxt that moved them fails here, loudly, before a
stream silently stops detecting gaps."""

from __future__ import annotations

import re
import tomllib

import ccxt
import ccxt.pro

from apps.exchanges.adapters import ccxt_patches
from apps.exchanges.adapters.ccxt_patches import CCXT_VERSION, internals_missing
from tests.conftest import ROOT

WHERE = "apps/exchanges/adapters/ccxt_patches.py"


def test_the_installed_ccxt_is_the_one_the_patches_were_written_against():
    assert ccxt.__version__ == CCXT_VERSION, (
        f"ccxt {ccxt.__version__} is installed, but {WHERE} was written and tested against ccxt {CCXT_VERSION}: "
        f"run tests/exchanges against it, fix what moved, then change CCXT_VERSION and the pin in "
        f"pyproject.toml together")


def test_pyproject_pins_exactly_that_version():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d for d in dependencies if re.match(r"ccxt\b", d)]
    assert pins == [f"ccxt=={CCXT_VERSION}"], f"pyproject.toml pins {pins}; {WHERE} says ccxt=={CCXT_VERSION}"


def test_ccxt_still_has_every_internal_the_patches_use():
    missing = internals_missing()
    assert not missing, (f"ccxt {ccxt.__version__} lacks internals that {WHERE} patches:\n  - "
                         + "\n  - ".join(missing))


def test_the_check_notices_a_moved_internal(monkeypatch):
    # What a ccxt release that rewrote these methods would look like to the check.
    def handle_order_book(self, client, message):
        self.resolve_book(client, message)

    monkeypatch.setattr(ccxt.pro.bybit, "handle_order_book", handle_order_book)
    monkeypatch.setattr(ccxt.pro.okx, "handle_message", lambda self, message: None)
    monkeypatch.setattr(ccxt.Exchange, "on_rest_response", lambda self, response: response)
    missing = internals_missing()
    assert any("ccxt.pro.bybit.handle_order_book" in m for m in missing)
    assert any("ccxt.pro.okx.handle_message" in m for m in missing)
    assert any("on_rest_response" in m for m in missing)
    assert len(missing) == 3, missing


def test_every_streamed_exchange_is_guarded():
    from apps.exchanges.adapters import ADAPTERS

    assert {cls.ccxt_id for cls in ADAPTERS.values()} <= set(ccxt_patches.GUARDED_EXCHANGES)
