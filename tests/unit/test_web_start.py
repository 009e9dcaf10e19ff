"""A web process loads at start what its first requests would: the URL resolver and the page templates."""

from django.template import engines
from django.urls import clear_url_caches, get_resolver


def test_the_url_resolver_and_page_templates_are_ready_before_the_first_request():
    from pressureweb import asgi

    loader = engines["django"].engine.template_loaders[0]
    loader.reset()
    clear_url_caches()
    asgi._first_request_warm()
    assert {"dashboard/overview.html", "dashboard/_overview_row.html", "dashboard/instrument.html",
            "base.html"} <= set(loader.get_template_cache)
    assert get_resolver()._populated
