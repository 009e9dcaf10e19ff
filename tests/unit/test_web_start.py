"""A web process loads at start what its first requests would: the URL resolver, the page templates and the
instrument pages' figures."""

from django.template import engines
from django.urls import clear_url_caches, get_resolver

from apps.dashboard import charts


def test_the_url_resolver_page_templates_and_figures_are_ready_before_the_first_request():
    from pressureweb import asgi

    loader = engines["django"].engine.template_loaders[0]
    loader.reset()
    clear_url_caches()
    for cached in (charts._instrument_panels_cached, charts._instrument_panels_themed, charts._spi_figure_cached,
                   charts._spi_figure_build):
        cached.cache_clear()
    asgi._first_request_warm()
    assert {"dashboard/overview.html", "dashboard/_overview_row.html", "dashboard/instrument.html",
            "base.html"} <= set(loader.get_template_cache)
    assert get_resolver()._populated
    # Plotly's builds, in both themes: an instrument page then only writes its instrument's names into them.
    assert charts._instrument_panels_themed.cache_info().currsize == 2
    assert charts._spi_figure_build.cache_info().currsize == 2
