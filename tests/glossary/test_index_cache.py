"""The glossary index's A-Z listing is cached per glossary version: every committed change to a term or its
links shows at once, in this process and in others (the version lives in Redis)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.glossary.models import Term
from pressureweb.payload_cache import process_payloads

pytestmark = pytest.mark.django_db


def _index(client) -> str:
    return client.get(reverse("glossary:index")).content.decode()


def _behind_the_write_path(slug: str, **fields) -> None:
    Term.objects.filter(slug=slug).update(**fields)  # no signal, so no version bump


def test_the_listing_is_served_from_the_cache(client):
    _index(client)
    _behind_the_write_path("vwap", short="Changed behind the write path.")
    assert "Changed behind the write path." not in _index(client)
    process_payloads.clear()  # another web process: it reads the same payload from Redis
    assert "Changed behind the write path." not in _index(client)


def test_an_admin_edit_shows_at_once(admin_client, django_capture_on_commit_callbacks):
    _index(admin_client)
    term = Term.objects.get(slug="vwap")
    data = {"title": "Volume-weighted average price (edited)", "slug": term.slug, "category": term.category,
            "short": "Edited in the admin.", "synonyms": ", ".join(term.synonyms), "metric": term.metric,
            "related": list(term.related.values_list("pk", flat=True)), **term.facets}
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(reverse("admin:glossary_term_change", args=[term.pk]), data).status_code == 302
    html = _index(admin_client)
    assert "Volume-weighted average price (edited)</a>" in html and "Edited in the admin." in html


def test_a_new_and_a_deleted_term_show_at_once(client, django_capture_on_commit_callbacks):
    _index(client)
    vwap = Term.objects.get(slug="vwap")
    with django_capture_on_commit_callbacks(execute=True):
        Term.objects.create(slug="queue-position", title="Queue position", category=vwap.category,
                            short="Where a resting order stands in line.", what_is_it="Its place in the queue.")
    html = _index(client)
    assert 'data-term="queue-position"' in html and 'href="#letter-Q"' in html

    with django_capture_on_commit_callbacks(execute=True):
        Term.objects.get(slug="queue-position").delete()
    html = _index(client)
    assert 'data-term="queue-position"' not in html and 'href="#letter-Q"' not in html


def test_a_changed_related_link_moves_the_version_on(django_capture_on_commit_callbacks):
    from apps.glossary.selectors import glossary_version

    before = glossary_version()
    vwap, cvd = Term.objects.get(slug="vwap"), Term.objects.get(slug="cumulative-volume-delta")
    with django_capture_on_commit_callbacks(execute=True):
        vwap.related.add(cvd)
    assert glossary_version() > before


def test_a_category_listing_is_cached_apart_from_the_whole_listing(client):
    order_flow = client.get(reverse("glossary:index") + "?category=order-flow").content.decode()
    everything = _index(client)
    assert 'data-term="taker-sell-ratio"' in order_flow and 'data-term="bid-ask-spread"' not in order_flow
    assert 'data-term="bid-ask-spread"' in everything


def test_a_term_page_is_cached_per_glossary_version_and_an_edit_shows_at_once(client,
                                                                             django_capture_on_commit_callbacks):
    url = reverse("glossary:term", args=["vwap"])
    client.get(url)
    _behind_the_write_path("vwap", short="Changed behind the write path.")
    assert "Changed behind the write path." not in client.get(url).content.decode()

    term = Term.objects.get(slug="vwap")
    term.short = "Saved through the model."
    with django_capture_on_commit_callbacks(execute=True):
        term.save()
    assert "Saved through the model." in client.get(url).content.decode()

    related = term.related.first()
    link = f'href="{related.get_absolute_url()}" title='
    assert link in client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        term.related.remove(related)
    assert link not in client.get(url).content.decode()
