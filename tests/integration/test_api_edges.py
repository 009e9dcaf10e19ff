"""The API at its edges: times at the ends of the calendar, numbers that are not times, non-ASCII digits, long
values and other methods get a 400 (or 405) with a message on every endpoint, in production mode too; the
rate limit keys on the client IP from trusted proxy headers and steps aside, with a warning, when Redis is down.
"""

import logging

import pytest
from django.test import Client, override_settings

from apps.api.api import throttle
from apps.markets.services import instrument_ensure

pytestmark = pytest.mark.django_db

INSTRUMENT = {"exchange": "binance", "market": "spot", "symbol": "BTCUSDT"}
ENDPOINTS = {"bars": INSTRUMENT, "pressure": INSTRUMENT, "episodes": {}, "flows": {}}
# Nothing listens on port 1: every cache call is refused.
UNREACHABLE = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                           "LOCATION": "redis://127.0.0.1:1/0", "KEY_PREFIX": "pw-cache"}}
ISO = "must be an ISO 8601 time such as 2024-08-09T00:00:00Z"
TOGETHER = "give start and end together"  # /episodes takes both bounds or none

# (parameters, the message's words; a dict when /episodes answers otherwise)
EDGES = [
    ({"end": "0001-01-01"}, {"": "start defaults to end minus", "episodes": TOGETHER}),
    ({"end": "0001-01-01T00:30:00Z"}, {"": "which is before year 1: give start", "episodes": TOGETHER}),
    ({"start": "9999-12-31T23:59:59Z"}, {"": "start must be before end", "episodes": TOGETHER}),
    ({"start": "0001-01-01T00:00:00+01:00", "end": "0001-01-01T05:00:00Z"},
     "start must be a time between years 1 and 9999 in UTC, got '0001-01-01T00:00:00+01:00'"),
    ({"start": "9999-12-31T23:00:00Z", "end": "9999-12-31T23:59:59-01:00"},
     "end must be a time between years 1 and 9999 in UTC"),
    ({"start": "0001-01-01T00:00:00Z", "end": "0001-01-01T00:00:00Z"}, "start must be before end"),
    ({"start": "\u0662\u0660\u0662\u0664-\u0660\u0668-\u0660\u0669T00:00:00Z", "end": "2024-08-09T01:00:00Z"},
     f"start {ISO}, got '\u0662\u0660\u0662\u0664-\u0660\u0668-\u0660\u0669T00:00:00Z'"),  # Arabic-Indic digits
    ({"start": "2024-08-09T00:00:00Z", "end": "\uff12\uff10\uff12\uff14-08-09T01:00:00Z"}, f"end {ISO}"),  # fullwidth
    ({"start": "10000-01-01T00:00:00Z", "end": "10000-01-01T01:00:00Z"}, f"start {ISO}"),
    ({"start": "0000-12-31T23:00:00Z", "end": "0001-01-01T01:00:00Z"}, f"start {ISO}"),
    ({"start": "-0001-01-01T00:00:00Z", "end": "2024-08-09T01:00:00Z"}, f"start {ISO}"),
    ({"start": "1723161600", "end": "1723165200"}, f"start {ISO}"),  # epoch seconds are not ISO 8601
    ({"start": "-1", "end": "99999999999999999999999"}, f"start {ISO}"),
    ({"start": "1e309", "end": "2024-08-09T01:00:00Z"}, f"start {ISO}"),
    ({"start": "2024-08-09T00:00:00+99:00", "end": "2024-08-09T01:00:00Z"}, f"start {ISO}"),
    ({"start": "2024-08-09T00:00:00Z", "end": "2024-08-09T24:00:01Z"}, f"end {ISO}"),
    ({"start": "0001-01-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"}, "range too long"),
]


@pytest.fixture
def production_client():
    """A client seeing what a browser would (a 500 page instead of the exception), with DEBUG off."""
    instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    with override_settings(DEBUG=False, ALLOWED_HOSTS=["testserver"]):
        yield Client(raise_request_exception=False)


def _expected(message, endpoint: str) -> str:
    return message if isinstance(message, str) else message.get(endpoint, message[""])


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_times_at_the_edges_get_a_400_with_a_message(production_client, endpoint, debug):
    failures = []
    with override_settings(DEBUG=debug):
        for params, message in EDGES:
            if endpoint == "episodes" and "range too long" in str(message):
                continue  # episodes have no range limit: the whole calendar is a valid window
            resp = production_client.get(f"/api/v1/{endpoint}", {**ENDPOINTS[endpoint], **params})
            want = _expected(message, endpoint)
            body = resp.json() if resp["Content-Type"].startswith("application/json") else resp.content[:200]
            if resp.status_code != 400 or list(body) != ["error"] or want not in body["error"]:
                failures.append((params, resp.status_code, body, want))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("window", [("0001-01-01T00:00:00Z", "0001-01-01T01:00:00Z"),
                                    ("9999-12-31T23:00:00Z", "9999-12-31T23:59:59.999999Z")], ids=["year1", "year9999"])
def test_the_first_and_last_hours_of_the_calendar_are_valid_windows(production_client, endpoint, window):
    resp = production_client.get(f"/api/v1/{endpoint}", {**ENDPOINTS[endpoint], "start": window[0], "end": window[1]})
    assert resp.status_code == 200, resp.content
    body = resp.json()
    rows = next(v for k, v in body.items() if k in ("bars", "pressure", "episodes"))
    assert rows == []
    if "start" in body:
        assert (body["start"], body["end"]) == (window[0], window[1])


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_long_values_and_other_methods_are_refused_with_a_reason(production_client, endpoint):
    resp = production_client.get(f"/api/v1/{endpoint}", {**ENDPOINTS[endpoint], "exchange": "x" * 10_000})
    assert resp.status_code == 400
    assert resp.json() == {"error": "exchange must be at most 64 characters"}
    # Read-only: other methods get 405, not a CSRF 403 (nothing here reads a session).
    strict = Client(enforce_csrf_checks=True, raise_request_exception=False)
    for method in ("post", "put", "patch", "delete"):
        assert getattr(strict, method)(f"/api/v1/{endpoint}").status_code == 405, method


@pytest.mark.parametrize("params", [{"market": "spot", "symbol": "BTCUSDT"},
                                    {"exchange": "", "market": "spot", "symbol": "BTCUSDT"}])
def test_missing_or_empty_required_parameters_get_the_usual_400(production_client, params):
    resp = production_client.get("/api/v1/bars", params)
    assert (resp.status_code, resp.json()) == (400, {"error": "missing parameter(s): exchange"})


def test_the_rate_limit_keys_on_the_client_behind_trusted_proxies(client, settings, flush_redis):
    settings.API_RATE, settings.TRUSTED_PROXY_COUNT = "2/m", 1

    def get(forwarded_for: str) -> int:
        return client.get("/api/v1/flows", HTTP_X_FORWARDED_FOR=forwarded_for).status_code

    assert [get("198.51.100.1"), get("198.51.100.1")] == [200, 200]
    # Whatever the client writes left of our proxy's entry does not make it someone else.
    assert get("203.0.113.9, 198.51.100.1") == 429
    assert get("198.51.100.2") == 200  # another client behind the same proxy has its own budget
    settings.TRUSTED_PROXY_COUNT = 0  # no trusted proxy: the header is the client's word, and ignored
    assert [get("192.0.2.1"), get("192.0.2.2"), get("192.0.2.3")] == [200, 200, 429]


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_with_redis_unreachable_the_api_answers_and_warns_once_a_minute(production_client, settings, caplog,
                                                                       monkeypatch, debug):
    settings.API_RATE = "1/m"  # were anything counted, the second request would be refused
    now = [1000.0]
    monkeypatch.setattr(throttle, "clock", lambda: now[0])
    monkeypatch.setattr(throttle, "_last_warning", None)
    answers = []
    with override_settings(CACHES=UNREACHABLE, DEBUG=debug), caplog.at_level(logging.WARNING,
                                                                            logger="apps.api.throttle"):
        for endpoint, params in ENDPOINTS.items():
            answers += [production_client.get(f"/api/v1/{endpoint}", params) for _ in range(2)]
        warned = [r for r in caplog.records if r.name == "apps.api.throttle"]
        now[0] += 59.0
        answers.append(production_client.get("/api/v1/flows"))
        assert len([r for r in caplog.records if r.name == "apps.api.throttle"]) == len(warned)
        now[0] += 1.0
        answers.append(production_client.get("/api/v1/flows"))
        warned_again = [r for r in caplog.records if r.name == "apps.api.throttle"]
    assert [a.status_code for a in answers] == [200] * 10
    assert all(a["Content-Type"].startswith("application/json") for a in answers)
    assert len(warned) == 1 and "Redis" in warned[0].getMessage() and warned[0].levelno == logging.WARNING
    assert len(warned_again) == 2
