from __future__ import annotations

import pytest

from apps.exchanges import services
from tests.exchangeserver import ExchangeServer


@pytest.fixture
def exchange_server():
    server = ExchangeServer().start()
    yield server
    server.stop()


@pytest.fixture
def exchanges_at(settings, exchange_server):
    """Every adapter the services create talks to the local server."""
    settings.EXCHANGE_API_BASE = exchange_server.base
    settings.EXCHANGE_WS_BASE = exchange_server.ws_base
    settings.EXCHANGE_TIMEOUT_MS = 3000
    services._adapters.clear()
    yield exchange_server
    services._adapters.clear()
