"""The interactive API docs (ninja's bundled Swagger UI) work under the site's CSP: no CDN, no inline script."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def test_api_docs_render_every_operation_without_a_csp_violation(live_server, browser):
    page = browser.new_page()
    errors, outside = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda req: outside.append(req.url) if not req.url.startswith(live_server.url) else None)
    page.goto(live_server.url + "/api/v1/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert sorted(p.strip() for p in paths) == ["/api/v1/bars", "/api/v1/episodes", "/api/v1/flows",
                                                 "/api/v1/pressure", "/api/v1/track-record"]
    assert not errors, errors
    assert not outside, outside
