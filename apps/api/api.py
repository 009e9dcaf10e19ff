"""/api/v1: the public read-only API (django-ninja), its errors and its rate limit.

Every error is JSON ``{"error": "<one sentence>"}``: 400 for a bad parameter (ninja's 422 validation
errors included), 429 with Retry-After when a client goes over settings.API_RATE. Only GET is routed, so
other methods get 405; there is no session auth, so no CSRF state to protect.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Swagger
from ninja.errors import HttpError, Throttled, ValidationError

from apps.api import flows as flows_api
from apps.api import views
from apps.api.throttle import ClientRateThrottle

DESCRIPTION = """Selling-pressure bars, the Selling Pressure Index, episodes and on-chain exchange flows.

Times are ISO 8601 and UTC (a time without a zone is read as UTC). Prices and volumes are exact decimals as
text. Every error is JSON `{"error": "..."}`: 400 names the bad parameter, 429 comes with Retry-After."""

throttle = ClientRateThrottle()
api = NinjaAPI(
    title="PressureWeb API", version="1", description=DESCRIPTION, urls_namespace="api",
    # Swagger UI from ninja's bundled static files (no CDN), so it runs under the site's CSP (script-src 'self').
    docs=Swagger(settings={"validatorUrl": None}), docs_url="/docs",
    throttle=[throttle],
)
api.add_router("", views.router)
api.add_router("", flows_api.router)


def _error(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return api.create_response(request, {"error": message}, status=status)


def query_error_message(errors: list[dict]) -> str:
    """One sentence for pydantic's errors on the query string, in the words the API has always used."""
    # An empty value counts as missing (every required parameter has min_length 1).
    missing = [str(e["loc"][-1]) for e in errors if e["type"] in ("missing", "string_too_short")]
    if missing:
        return f"missing parameter(s): {', '.join(dict.fromkeys(missing))}"
    first = errors[0]
    name = str(first["loc"][-1]) if len(first["loc"]) > 1 else "query"
    if first["type"] == "value_error":  # our own validators' messages (apps/api/schemas.py)
        return str(first["ctx"]["error"])
    if first["type"] in ("string_too_long", "too_long"):
        return f"{name} must be at most {first['ctx']['max_length']} characters"
    return f"{name}: {first['msg']}"


@api.exception_handler(ValidationError)
def _bad_parameters(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return _error(request, query_error_message(exc.errors), 400)


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc, Throttled):
        return _error(request, f"rate limit exceeded ({settings.API_RATE} per client); slow down", 429)
    return _error(request, exc.message, exc.status_code)
