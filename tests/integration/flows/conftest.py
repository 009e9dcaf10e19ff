"""Fixtures for the flow integration tests: the local Esplora/JSON-RPC server and the shipped labels."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from apps.flows import selectors
from apps.flows.services import wallet_labels_import
from tests.flowserver import FlowServer


@pytest.fixture
def flowserver():
    server = FlowServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def flow_settings(settings, flowserver):
    """Point the real clients at the local server; short windows so a few hours of data have z-scores."""
    settings.ESPLORA_URL = flowserver.esplora_url
    settings.ETH_RPC_URL = flowserver.rpc_url
    settings.FLOWS_TIP_CACHE_SECONDS = 0
    settings.FLOWS_HTTP_TIMEOUT = 1.0
    settings.BTC_MIN_CONFIRMATIONS = 2
    settings.FLOWS_BTC_MAX_PAGES = 40
    settings.ETH_REORG_DEPTH = 6
    settings.NETFLOW_Z_WINDOW_DAYS = 1
    settings.NETFLOW_Z_MIN_HOURS = 3
    settings.WHALE_TOP_N = 2
    settings.FLOWS_PENDING_RECHECK_MINUTES = 0
    cache.clear()  # back-offs, locks and tips of other tests (REDIS_URL points at a database of our own)
    selectors._label_cache.clear()
    yield settings
    cache.clear()


@pytest.fixture
def labels(db):
    return wallet_labels_import()


@pytest.fixture
def btc_wallets(labels):
    """Exchange slug -> its labelled BTC addresses (sorted), from the shipped file."""
    out: dict[str, list[str]] = {}
    for address, exchange in sorted(selectors.wallet_labels(chain="btc").items()):
        out.setdefault(exchange, []).append(address)
    return out


@pytest.fixture
def eth_wallets(labels):
    out: dict[str, list[str]] = {}
    for address, exchange in sorted(selectors.wallet_labels(chain="eth").items()):
        out.setdefault(exchange, []).append(address)
    return out
