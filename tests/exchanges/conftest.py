from __future__ import annotations

import pytest

from apps.exchanges import services
from apps.exchanges.models import Feed
from apps.markets.services import instrument_ensure
from tests.exchangeserver import ExchangeServer


def feed_for(source_slug: str, symbol: str, base: str, quote: str) -> Feed:
    cls = services.ADAPTERS[source_slug]
    source = services.source_ensure(slug=source_slug)
    instrument = instrument_ensure(exchange_slug=cls.exchange, market=cls.market, symbol=symbol, base=base,
                                   quote=quote, kind=cls.kind)
    return services.feed_ensure(source=source, instrument=instrument)


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
