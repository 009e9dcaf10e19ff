"""Large page payloads kept as ready script elements and spliced into pages as bytes.

A page such as an instrument's 30 days carries ~1 MB of JSON. Cached per version of its data
(pressureweb/payload_cache.py), it is cheap per view because:

- the JSON is encoded once, as the bytes of a whole ``<script type="application/json">`` element
  (``ScriptElement``);
- the page template renders a short marker where the element goes, and ``render_with_payloads``
  splices the element's bytes into the encoded page, so the megabyte is not copied through the
  template engine's joins, a SafeString and a str-to-bytes encode on every view;
- to a client that accepts gzip, the element goes as a deflate stream compressed once (``ScriptElement.deflated``)
  between the rest of the page, compressed per view: gzip's deflate blocks may follow one another whatever
  compressor wrote them, so only the page around the megabyte is compressed again (GZipMiddleware would compress
  the whole page on every view, ~30 ms per MB).

The web layer's: views build elements from the rows selectors return.
"""

from __future__ import annotations

import re
import secrets
import struct
from dataclasses import dataclass
from functools import cached_property

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.middleware.gzip import GZipMiddleware, re_accepts_gzip
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers
from django.utils.safestring import SafeString, mark_safe
from zlib_ng import zlib_ng

# As in django.utils.html.json_script: keeps "</script>" and friends inert inside a script element.
_SCRIPT_ESCAPES = ((b"<", b"\\u003C"), (b">", b"\\u003E"), (b"&", b"\\u0026"))
_ELEMENT_ID = re.compile(r"^[A-Za-z][\w-]*$")
# Dates, times and decimals as json_script writes them (DjangoJSONEncoder); orjson does the rest.
_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
_django_default = DjangoJSONEncoder().default
_LEVEL = 6  # gzip's default, as GZipMiddleware


@dataclass(frozen=True)
class Deflated:
    """Bytes as a raw deflate stream that ends on a byte boundary without a final block, so more may follow."""

    stream: bytes
    crc: int
    size: int


def deflate(data: bytes) -> Deflated:
    # zlib-ng writes the same format as zlib, about twice as fast.
    compressor = zlib_ng.compressobj(_LEVEL, zlib_ng.DEFLATED, -zlib_ng.MAX_WBITS)
    return Deflated(compressor.compress(data) + compressor.flush(zlib_ng.Z_SYNC_FLUSH), zlib_ng.crc32(data),
                    len(data))


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

    @cached_property
    def deflated(self) -> Deflated:
        """The element compressed once, in this process, for every gzipped page that carries it."""
        return deflate(self.element)


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
    spliced into the encoded page in place of the markers (and their deflate streams into a gzipped page)."""
    chunks: list[str | ScriptElement] = [render_to_string(template_name, context, request)]
    for payload in payloads:
        if payload is None:
            continue
        spliced: list[str | ScriptElement] = []
        for chunk in chunks:
            if isinstance(chunk, ScriptElement):
                spliced.append(chunk)
                continue
            for i, part in enumerate(chunk.split(payload.marker)):
                if i:
                    spliced.append(payload)
                spliced.append(part)
        chunks = spliced
    parts = [c if isinstance(c, ScriptElement) else c.encode() for c in chunks]
    if not re_accepts_gzip.search(request.META.get("HTTP_ACCEPT_ENCODING", "")):
        return HttpResponse(b"".join(p.element if isinstance(p, ScriptElement) else p for p in parts))
    response = HttpResponse(_gzip([p.deflated if isinstance(p, ScriptElement) else p for p in parts]))
    response["Content-Encoding"] = "gzip"
    patch_vary_headers(response, ("Accept-Encoding",))
    return response


def _gzip(parts: list[bytes | Deflated]) -> bytes:
    """One gzip member of the parts in order: bytes compressed here, Deflated streams as they are."""
    # As GZipMiddleware against BREACH: a file name of random length in the header blurs the length of the
    # compressed secrets (CSRF tokens) that follow.
    name = b"a" * secrets.randbelow(GZipMiddleware.max_random_bytes)
    out = [b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\xff", name, b"\x00"]  # FNAME set, no time, OS unknown
    crc = size = 0
    for part in (deflate(p) if isinstance(p, bytes) else p for p in parts if p):
        out.append(part.stream)
        crc, size = zlib_ng.crc32_combine(crc, part.crc, part.size), size + part.size
    out.append(b"\x03\x00")  # the final block, empty
    out.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
    return b"".join(out)
