"""{% term "slug" %} and {% term "slug" "Label" %}: a link from any chart or metric label to its explanation."""

from __future__ import annotations

import logging

from django import template
from django.conf import settings
from django.core import mail
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apps.glossary.rendering import json_ld_script
from apps.glossary.selectors import term_link
from apps.glossary.selectors import term_url as _term_url

logger = logging.getLogger(__name__)
register = template.Library()


def _strict() -> bool:
    """Broken term links fail loudly in development and tests; in production they log and degrade."""
    explicit = getattr(settings, "GLOSSARY_STRICT", None)
    if explicit is not None:
        return bool(explicit)
    # Django's setup_test_environment() installs mail.outbox, and forces DEBUG off while testing.
    return settings.DEBUG or hasattr(mail, "outbox")


@register.simple_tag
def term(slug: str, label: str | None = None) -> SafeString:
    link = term_link(slug=slug)
    if link is None:
        if _strict():
            raise template.TemplateSyntaxError(f"{{% term %}}: no glossary term with slug {slug!r}")
        logger.error("{%% term %%}: no glossary term with slug %r", slug)
        return format_html("{}", label or "")
    # A plain "i" drawn as a circled icon by glossary.css: the ⓘ glyph is missing from many fonts.
    anchor = format_html(
        '<a class="term-link" href="{}" title="{}" aria-label="What is {}?" data-term="{}">i</a>',
        link.url, link.short, link.title, link.slug,
    )
    if label is None:
        return anchor
    # A no-break space keeps the icon on the label's line.
    return format_html('<span class="term-label" data-term="{}">{}\u00a0{}</span>', link.slug, label, anchor)


@register.simple_tag
def term_url(slug: str) -> str:
    return _term_url(slug)


@register.simple_tag
def json_ld(data: dict) -> SafeString:
    return json_ld_script(data)
