from __future__ import annotations

import string

import plotly.graph_objects as go
import plotly.io as pio
from django.http import Http404
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe

from apps.glossary.models import FACETS, Term
from apps.glossary.rendering import json_ld_script, markdown_plain, markdown_render
from apps.glossary.selectors import (
    CHARTABLE_METRICS,
    category_counts,
    chart_instrument,
    glossary_version,
    metric_pages,
    metric_recent_bars,
    term_get,
    terms_by_letter,
    terms_list,
    terms_search,
)
from pressureweb.lib.charts import THEMES
from pressureweb.payload_cache import cached_while_rebuilt

SCHEMA = "https://schema.org"
GLOSSARY_NAME = "PressureWeb glossary"
CHART_MINUTES = 60


def _theme(request) -> str:
    return "light" if request.COOKIES.get("theme") == "light" else "dark"


def _term_set(request) -> dict:
    url = request.build_absolute_uri(reverse("glossary:index"))
    return {"@type": "DefinedTermSet", "@id": url, "name": GLOSSARY_NAME, "url": url}


def _breadcrumbs(request, trail: list[tuple[str, str]]) -> dict:
    return {
        "@context": SCHEMA, "@type": "BreadcrumbList",
        "itemListElement": [
            {"@type": "ListItem", "position": i, "name": name, "item": request.build_absolute_uri(url)}
            for i, (name, url) in enumerate(trail, start=1)
        ],
    }


def _defined_term(request, term: Term) -> dict:
    url = request.build_absolute_uri(term.get_absolute_url())
    data = {"@type": "DefinedTerm", "@id": url, "name": term.title, "description": term.short, "url": url,
            "termCode": term.slug}
    if term.synonyms:
        data["alternateName"] = list(term.synonyms)
    return data


def index(request):
    query = " ".join(request.GET.get("q", "").split())
    category = request.GET.get("category", "")
    notice = None
    if category and category not in Term.Category.values:
        notice = f"There is no category “{category}”; showing every category."
        category = ""
    terms = terms_search(query=query, category=category or None) if query else []
    listing = {"az_html": "", "json_ld_html": _index_json_ld(request, terms),
               "categories": category_counts()} if query else _index_az(request, category=category)
    return render(request, "glossary/index.html", {
        "query": query, "category": category, "category_label": Term.Category(category).label if category else "",
        "categories": listing["categories"], "terms": terms, "notice": notice,
        "az_html": mark_safe(listing["az_html"]),  # noqa: S308 - rendered by our template
        "json_ld_html": mark_safe(listing["json_ld_html"]),  # noqa: S308 - escaped by json_ld_script
    })


def _index_json_ld(request, terms: list[Term]) -> str:
    index_url = reverse("glossary:index")
    term_set = {"@context": SCHEMA, **_term_set(request), "description": "Every concept PressureWeb shows, explained.",
                "hasDefinedTerm": [_defined_term(request, t) for t in terms]}
    return "\n".join(json_ld_script(block) for block in (term_set, _breadcrumbs(request, [("Glossary", index_url)])))


def _index_az(request, *, category: str) -> dict:
    """The A-Z listing, its JSON-LD and the category counts: glossary data only, so kept per glossary
    version (and site URL, which the JSON-LD names) in the cache and in each web process."""
    version = glossary_version()
    key = None if version is None else f"glossary:index:{category}:{request.build_absolute_uri('/')}"

    def build() -> dict:
        terms = list(terms_list(category=category))
        groups = terms_by_letter(terms=terms)
        present = {letter for letter, _ in groups}
        letters = [(letter, letter in present) for letter in [*string.ascii_uppercase, "#"]]
        return {"az_html": render_to_string("glossary/_index_az.html", {"groups": groups, "letters": letters}),
                "json_ld_html": str(_index_json_ld(request, terms)), "categories": category_counts()}

    return cached_while_rebuilt(key, version, build, stale_seconds=0)


def _metric_figure(rows: list[dict], *, metric: str, label: str, theme: str) -> str:
    t = THEMES.get(theme, THEMES["dark"])
    fig = go.Figure(go.Scatter(
        x=[r["bucket_start"] for r in rows], y=[None if r.get(metric) is None else float(r[metric]) for r in rows],
        mode="lines+markers", name=label, line={"width": 1.5, "color": "#42a5f5"}, marker={"size": 3},
        meta={"y": metric},
        hovertemplate=f"{metric} %{{y:,.4~f}}<extra></extra>",
    ))
    fig.update_layout(
        template=t["template"], paper_bgcolor=t["paper"], plot_bgcolor=t["plot"], height=280,
        margin={"l": 60, "r": 20, "t": 10, "b": 40}, showlegend=False, uirevision="keep-zoom",
        xaxis={"title": {"text": "Time (UTC)"}, "gridcolor": t["grid"]},
        yaxis={"title": {"text": metric}, "gridcolor": t["grid"]},
    )
    return pio.to_json(fig, validate=False, pretty=False)


def _chart(request, term: Term) -> dict | None:
    """A live chart of the term's metric on the first replay instrument, when the bars API has that field."""
    if term.metric not in CHARTABLE_METRICS:
        return None
    instrument = chart_instrument()
    if instrument is None:
        return {"instrument": None}
    rows = metric_recent_bars(instrument=instrument, minutes=CHART_MINUTES)
    return {
        "instrument": instrument, "has_bars": bool(rows),
        "figure": _metric_figure(rows, metric=term.metric, label=term.title, theme=_theme(request)),
        "config": {
            "instrument": instrument.pk, "metric": term.metric, "rangeMs": CHART_MINUTES * 60_000,
            # Live bars carry no CVD (it depends on the range); the page sums delta like the instrument page.
            "cumulativeOf": "delta_base" if term.metric == "cvd_base" else None,
            "rows": [{"bucket_start": r["bucket_start"], "value": r.get(term.metric),
                      "delta_base": r.get("delta_base")} for r in rows],
        },
    }


def term(request, slug):
    term = term_get(slug=slug)
    if term is None:
        raise Http404("No such glossary term")
    facets = [
        {"id": f.field.replace("_", "-"), "heading": f.heading, "html": markdown_render(getattr(term, f.field)),
         "text": getattr(term, f.field)}
        for f in FACETS if getattr(term, f.field).strip()
    ]
    index_url = reverse("glossary:index")
    category_url = f"{index_url}?category={term.category}"
    defined_term = {"@context": SCHEMA, **_defined_term(request, term), "inDefinedTermSet": _term_set(request)}
    faq = {
        "@context": SCHEMA, "@type": "FAQPage",
        "mainEntity": [
            {"@type": "Question", "name": f"{term.title}: {f['heading']}",
             "acceptedAnswer": {"@type": "Answer", "text": markdown_plain(f["text"])}}
            for f in facets
        ],
    }
    trail = [("Glossary", index_url), (term.get_category_display(), category_url),
             (term.title, term.get_absolute_url())]
    return render(request, "glossary/term.html", {
        "term": term, "facets": facets, "category_url": category_url,
        "related": sorted(term.related.all(), key=lambda t: t.title.lower()),
        "shown_on": metric_pages(metric=term.metric) if term.metric else [],
        "chart": _chart(request, term),
        "json_ld": [defined_term, faq, _breadcrumbs(request, trail)],
    })
