import pytest
from django.urls import reverse

from apps.glossary.models import Term

pytestmark = pytest.mark.django_db


def test_changelist_filters_and_search(admin_client):
    url = reverse("admin:glossary_term_changelist")
    assert admin_client.get(url).status_code == 200
    resp = admin_client.get(url, {"q": "CVD"})
    assert resp.status_code == 200 and "Cumulative volume delta" in resp.content.decode()
    resp = admin_client.get(url, {"category__exact": "on-chain", "has_metric": "yes"})
    assert resp.status_code == 200


def test_edit_a_term(admin_client):
    term = Term.objects.get(slug="vwap")
    url = reverse("admin:glossary_term_change", args=[term.pk])
    page = admin_client.get(url)
    assert page.status_code == 200 and "volume-weighted average price, VWAP price" in page.content.decode()
    data = {
        "title": term.title, "slug": term.slug, "category": term.category, "short": "New short.",
        "synonyms": "VWAP, average price", "metric": term.metric,
        "related": list(term.related.values_list("pk", flat=True)),
        **{name: value for name, value in term.facets.items()},
    }
    resp = admin_client.post(url, data)
    assert resp.status_code == 302, resp.content.decode()[:2000]
    term.refresh_from_db()
    assert term.short == "New short." and term.synonyms == ["VWAP", "average price"]
    assert term.synonyms_text == "|vwap|average price|"


def test_admin_rejects_unknown_placeholders(admin_client):
    term = Term.objects.get(slug="vwap")
    data = {"title": term.title, "slug": term.slug, "category": term.category, "short": term.short,
            "synonyms": "", "metric": term.metric, **term.facets, "caveats": "{{ SECRET_KEY }}"}
    resp = admin_client.post(reverse("admin:glossary_term_change", args=[term.pk]), data)
    assert resp.status_code == 200 and "Unknown placeholders" in resp.content.decode()
