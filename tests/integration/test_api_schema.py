"""schemathesis against our OpenAPI schema, in-process over WSGI: no input may cause a 500."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from apps.markets.models import SourceStatus
from apps.markets.services import instrument_ensure
from apps.markets.validation import TradeRow
from apps.pressure.services import market_batch_ingest
from pressureweb.wsgi import application
from tests.recordings import raw_trades

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


@pytest.fixture(scope="module")
def bars_in_db(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        inst = instrument_ensure(exchange_slug="binance-replay", market="spot", symbol="BTCUSDT", base="BTC",
                                 quote="USDT")
        market_batch_ingest(instrument=inst, trades=[TradeRow(*t) for t in raw_trades("spot_btcusdt_20240808.gz")],
                            source="schemathesis", publish=False)
        yield
        # Committed outside any test transaction: remove it all so later tests start clean.
        exchange = inst.exchange
        inst.delete()
        exchange.delete()
        SourceStatus.objects.filter(name="schemathesis").delete()


@pytest.fixture(autouse=True)
def keep_test_connection():
    # Calling the WSGI app directly fires request_finished, which would close the test's connection
    # (Django's test client disconnects this handler the same way).
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def no_rate_limit(settings):
    settings.API_RATE = "100000/m"
    settings.ALLOWED_HOSTS = ["*"]


@pytest.mark.django_db
@pytest.mark.usefixtures("bars_in_db")
@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_errors_and_matches_its_schema(case):
    response = case.call()
    assert response.status_code < 500, response.text
    # Schema-valid but semantically impossible queries (start after end, a 20-year range) are answered
    # 400 with a message by design, so "positive data must be accepted" does not apply.
    case.validate_response(response, excluded_checks=[positive_data_acceptance])


def test_schema_is_served_and_names_the_bar_contract(client):
    spec = client.get("/api/v1/openapi.json").json()
    props = spec["paths"]["/api/v1/bars"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    fields = props["properties"]["bars"]["items"]["properties"]
    assert {"bucket_start", "cvd_base", "imbalance_0_1pct", "taker_sell_quote"} <= set(fields)


@pytest.mark.django_db
def test_api_rate_limit_answers_429(client, settings, flush_redis):
    settings.API_RATE = "3/m"
    codes = [client.get("/api/v1/bars", {"exchange": "x", "market": "spot", "symbol": "Y"}).status_code
             for _ in range(5)]
    assert codes[:3] == [400, 400, 400] and codes[3:] == [429, 429]
