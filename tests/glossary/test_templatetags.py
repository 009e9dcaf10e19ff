import pytest
from django.template import Context, Template, TemplateSyntaxError

from apps.glossary.models import Term
from apps.glossary.selectors import term_url

pytestmark = pytest.mark.django_db


def render(source: str) -> str:
    return Template("{% load glossary %}" + source).render(Context({}))


def test_term_renders_an_accessible_info_link():
    term = Term.objects.get(slug="taker-sell-ratio")
    html = render('{% term "taker-sell-ratio" %}')
    assert html.startswith('<a class="term-link" href="/glossary/taker-sell-ratio/"')
    assert f'title="{term.short}"' in html
    assert 'aria-label="What is Taker sell ratio?"' in html and 'data-term="taker-sell-ratio"' in html
    assert html.endswith(">i</a>")


def test_term_with_a_label_renders_the_label_then_the_link():
    html = render('{% term "cumulative-volume-delta" "CVD" %}')
    assert html.startswith('<span class="term-label" data-term="cumulative-volume-delta">CVD\u00a0<a ')
    assert 'href="/glossary/cumulative-volume-delta/"' in html and 'data-term="cumulative-volume-delta">i</a>' in html


def test_labels_from_variables_are_escaped():
    html = Template("{% load glossary %}{% term 'vwap' label %}").render(Context({"label": "<b>VWAP</b>"}))
    assert "&lt;b&gt;VWAP&lt;/b&gt;" in html and "<b>" not in html


def test_term_accepts_variables():
    template = Template("{% load glossary %}{% for title, slug in panels %}{% term slug title %}{% endfor %}")
    html = template.render(Context({"panels": [("Price", "candlestick"), ("Spread", "bid-ask-spread")]}))
    assert 'href="/glossary/candlestick/"' in html and 'href="/glossary/bid-ask-spread/"' in html


def test_unknown_slug_raises_in_tests():
    with pytest.raises(TemplateSyntaxError, match="no-such-term"):
        render('{% term "no-such-term" %}')


def test_unknown_slug_degrades_to_the_label_when_not_strict(settings, caplog):
    settings.GLOSSARY_STRICT = False
    assert render('{% term "no-such-term" "Label" %}') == "Label"
    assert "no-such-term" in caplog.text


def test_a_saved_term_updates_the_links_at_once():
    assert "Taker sell ratio" in render('{% term "taker-sell-ratio" %}')
    term = Term.objects.get(slug="taker-sell-ratio")
    term.title = "Seller share"
    term.save()
    assert 'aria-label="What is Seller share?"' in render('{% term "taker-sell-ratio" %}')


def test_links_fall_back_to_the_term_files_when_the_table_is_empty():
    # Transactional tests flush the table; pages that link terms must still render.
    Term.objects.all().delete()
    assert 'href="/glossary/vwap/"' in render('{% term "vwap" "VWAP" %}')
    with pytest.raises(TemplateSyntaxError):
        render('{% term "no-such-term" %}')


def test_term_url_helper():
    assert term_url("vwap") == "/glossary/vwap/"
    assert render('{% term_url "vwap" %}') == "/glossary/vwap/"
