"""Term text to safe HTML: placeholders filled from settings, Markdown rendered, then sanitised.

Term text is data (files, admin edits), so the HTML is cleaned with nh3 against a small allow-list
whatever the Markdown produced; it is never passed through the Django template engine.
"""

from __future__ import annotations

import functools
import html
import json

import markdown
import nh3
from django.utils.html import strip_tags
from django.utils.safestring import SafeString, mark_safe

from apps.glossary.parameters import placeholders_fill

ALLOWED_TAGS = frozenset({
    "p", "br", "hr", "em", "strong", "code", "pre", "sub", "sup", "ul", "ol", "li", "blockquote", "a", "abbr",
    "h3", "h4", "table", "thead", "tbody", "tr", "th", "td",
})
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
_MARKDOWN_EXTENSIONS = ("extra", "sane_lists")

# As in django.utils.html.json_script: keeps "</script>" and friends inert inside a script element.
_JSON_SCRIPT_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


def html_sanitize(raw_html: str) -> str:
    return nh3.clean(
        raw_html, tags=set(ALLOWED_TAGS), attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES), link_rel="noopener noreferrer",
    )


def markdown_render(text: str) -> SafeString:
    """Markdown with {{ PLACEHOLDERS }} filled, as sanitised HTML safe to drop into a template."""
    return mark_safe(_render_filled(placeholders_fill(text or "")))  # noqa: S308 - cleaned by nh3 in _render_filled


def markdown_plain(text: str) -> str:
    """The same text as plain prose (placeholders filled), for JSON-LD answers and meta descriptions."""
    return _plain_filled(placeholders_fill(text or ""))


# Keyed by the text after its placeholders are filled, so an edited term or a changed setting is a
# new key: nothing to invalidate. Markdown and nh3 cost a few milliseconds per term page otherwise.
@functools.lru_cache(maxsize=4096)
def _render_filled(filled: str) -> str:
    raw = markdown.markdown(filled, extensions=list(_MARKDOWN_EXTENSIONS), output_format="html")
    return html_sanitize(raw)


@functools.lru_cache(maxsize=4096)
def _plain_filled(filled: str) -> str:
    return " ".join(html.unescape(strip_tags(_render_filled(filled))).split())


def json_ld_script(data: dict) -> SafeString:
    """A <script type="application/ld+json"> block, escaped so the data cannot close the element."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).translate(_JSON_SCRIPT_ESCAPES)
    return mark_safe(f'<script type="application/ld+json">{payload}</script>')  # noqa: S308 - escaped JSON
