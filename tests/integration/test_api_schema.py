"""schemathesis against our OpenAPI schema, in-process over WSGI: no input may cause a 500.

In `make test` the run has a fixed seed, so it cannot fail at random on main; `make fuzz` runs many more
examples (API_FUZZ_EXAMPLES) from a random seed that it prints (API_FUZZ_SEED=<seed> replays it).
"""

import os

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
FUZZ_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "0"))
schema.config.seed = int(os.environ.get("API_FUZZ_SEED") or 20240809)


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
@settings(max_examples=FUZZ_EXAMPLES or 150, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_never_errors_and_matches_its_schema(case):
    # The in-process WSGI client does not undo a Content-Encoding as an HTTP client does: ask for the plain body
    # (the gzipped answers: tests/integration/test_compression.py).
    response = case.call(headers={"Accept-Encoding": "identity"})
    assert response.status_code < 500, response.text
    if response.status_code == 400:
        body = response.json()
        assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"], body
    # Schema-valid but semantically impossible queries (start after end, a 20-year range) are answered
    # 400 with a message by design, so "positive data must be accepted" does not apply.
    case.validate_response(response, excluded_checks=[positive_data_acceptance])


def _resolve(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _fields(spec: dict, path: str, *keys: str) -> list[str]:
    """The property names of a 200 answer's rows, in the document's order: keys lead from the body to the rows."""
    node = _resolve(spec, spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"])
    for key in keys:
        node = _resolve(spec, node["properties"][key] if key != "[]" else node["items"])
    return list(node["properties"])


def test_schema_is_served_and_names_every_contract_field(client):
    from apps.flows.selectors import API_FIELDS as FLOW_FIELDS
    from apps.flows.selectors import BLOCK_FIELDS
    from apps.pressure.selectors import API_FIELDS, PRESSURE_FIELDS

    spec = client.get("/api/v1/openapi.json").json()
    assert _fields(spec, "/api/v1/bars", "bars", "[]") == list(API_FIELDS)
    assert _fields(spec, "/api/v1/pressure", "pressure", "[]") == list(PRESSURE_FIELDS)
    flow_rows = _resolve(spec, spec["components"]["schemas"]["Flows"])["properties"]["bars"]["anyOf"]
    assert [list(_resolve(spec, rows["items"])["properties"]) for rows in flow_rows] == [list(FLOW_FIELDS),
                                                                                      list(BLOCK_FIELDS)]
    assert {"start", "peak_spi", "source", "drawdown", "shares"} <= set(_fields(spec, "/api/v1/episodes", "episodes",
                                                                                "[]"))


def test_every_operation_declares_its_400_and_429_answers(client):
    spec = client.get("/api/v1/openapi.json").json()
    operations = {(path, method): op for path, item in spec["paths"].items() for method, op in item.items()}
    assert sorted(operations) == [("/api/v1/bars", "get"), ("/api/v1/episodes", "get"), ("/api/v1/flows", "get"),
                                  ("/api/v1/pressure", "get"), ("/api/v1/track-record", "get")]
    for (path, _), op in operations.items():
        assert op["operationId"] == path.rsplit("/", 1)[1]
        assert set(op["responses"]["200"]["content"]) == {"application/json", "text/csv"}, path
        for status in ("400", "429"):
            error = _resolve(spec, op["responses"][status]["content"]["application/json"]["schema"])
            assert error["required"] == ["error"] and error["properties"]["error"]["type"] == "string", (path, status)


@pytest.mark.django_db
def test_api_rate_limit_answers_429(client, settings, flush_redis):
    settings.API_RATE = "3/m"
    answers = [client.get("/api/v1/bars", {"exchange": "x", "market": "spot", "symbol": "Y"}) for _ in range(5)]
    assert [a.status_code for a in answers] == [400, 400, 400, 429, 429]
    assert answers[3].json() == {"error": "rate limit exceeded (3/m per client); slow down"}
    assert 1 <= int(answers[3]["Retry-After"]) <= 60
