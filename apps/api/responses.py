"""How /api/v1 answers: JSON or CSV bodies, and the responses every operation declares."""

from __future__ import annotations

import csv
from collections.abc import Iterable

from django.http import HttpResponse
from ninja import Router
from ninja.errors import HttpError

from apps.api.schemas import Error


class ApiError(HttpError):
    """A request the schema accepted but the data refuses (an unknown instrument): HTTP 400 with the message."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


# Every operation answers these besides its 200; ninja lists them in the OpenAPI document.
ERRORS = {400: Error, 429: Error}
_ERROR_TEXT = {
    400: "A bad parameter: the message says which and why",
    429: "Rate limited (API_RATE per client IP): retry after Retry-After seconds",
}


def openapi_extra(*, csv_too: bool = True) -> dict:
    """The parts of an operation's OpenAPI entry that ninja cannot infer: descriptions and the CSV variant."""
    responses: dict = {status: {"description": text} for status, text in _ERROR_TEXT.items()}
    if csv_too:
        responses[200] = {"content": {"text/csv": {"schema": {"type": "string"}}}}
    return {"responses": responses}


def get_operation(router: Router, name: str, *, ok: type, summary: str):
    """The decorator of ``GET /<name>`` on ``router``, whose URL name and OpenAPI operation id are ``name`` too:
    a 200 body of the schema ``ok``, the ERRORS and the JSON-or-CSV openapi_extra()."""
    return router.get(f"/{name}", response={200: ok, **ERRORS}, url_name=name, operation_id=name,
                      openapi_extra=openapi_extra(), summary=summary)


def csv_response(*, filename: str, fieldnames: Iterable[str], rows: Iterable[dict]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.DictWriter(response, fieldnames=list(fieldnames), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return response
