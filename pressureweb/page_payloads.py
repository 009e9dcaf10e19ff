"""Large page payloads kept as ready script elements and spliced into pages as bytes.

A page such as an instrument's 30 days carries ~1 MB of JSON. Cached per version of its data
(pressureweb/payload_cache.py), it is cheap per view because:

- the JSON is encoded once, as the bytes of a whole ``<script type="application/json">`` element
  (``ScriptElement``);
- the page template renders a short marker where the element goes, and ``render_with_payloads``
  splices the element's bytes into the encoded page, so the megabyte is not copied through the
  template engine's joins, a SafeString and a str-to-bytes encode on every view.

The web layer's: views build elements from the rows selectors return.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

# As in django.utils.html.json_script: keeps "</script>" and friends inert inside a script element.
_SCRIPT_ESCAPES = ((b"<", b"\\u003C"), (b">", b"\\u003E"), (b"&", b"\\u0026"))
_ELEMENT_ID = re.compile(r"^[A-Za-z][\w-]*$")
# Dates, times and decimals as json_script writes them (DjangoJSONEncoder); orjson does the rest.
_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
_django_default = DjangoJSONEncoder().default


@dataclass(frozen=True)
class ScriptElement:
    """``<script id="..." type="application/json">...</script>`` as UTF-8 bytes, ready to go into a page.

    In a template, ``{{ element.script }}`` renders a marker comment; render_with_payloads puts the
    element's bytes in its place. Escaped user text can never form the marker (its "<" is escaped).
    """

    element_id: str
    element: bytes

    @property
    def marker(self) -> str:
        return f"<!--payload:{self.element_id}-->"

    @property
    def script(self) -> SafeString:
        return mark_safe(self.marker)  # noqa: S308 - a fixed comment naming a checked element id


def script_element(data, element_id: str) -> ScriptElement:
    """The same JSON as {{ data|json_script:element_id }} (compact separators), encoded once by orjson."""
    if not _ELEMENT_ID.match(element_id):
        raise ValueError(f"not an element id: {element_id!r}")
    text = orjson.dumps(data, default=_django_default, option=_JSON_OPTIONS)
    for char, escaped in _SCRIPT_ESCAPES:
        text = text.replace(char, escaped)
    return ScriptElement(element_id, b'<script id="%s" type="application/json">%s</script>'
                         % (element_id.encode(), text))


def render_with_payloads(request, template_name: str, context: dict, *, payloads) -> HttpResponse:
    """render() for a page whose template places ScriptElements by {{ element.script }}: their bytes are
    spliced into the encoded page in place of the markers."""
    chunks: list[str | bytes] = [render_to_string(template_name, context, request)]
    for payload in payloads:
        if payload is None:
            continue
        spliced: list[str | bytes] = []
        for chunk in chunks:
            if isinstance(chunk, bytes):
                spliced.append(chunk)
                continue
            for i, part in enumerate(chunk.split(payload.marker)):
                if i:
                    spliced.append(payload.element)
                spliced.append(part)
        chunks = spliced
    return HttpResponse(b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks))
