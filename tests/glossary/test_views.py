import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.glossary.models import FACETS, Term
from apps.markets.services import instrument_ensure
from apps.pressure.models import PressureBar

pytestmark = pytest.mark.django_db
JSON_LD_RE = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.DOTALL)


def json_ld(html: str) -> dict[str, dict]:
    blocks = [json.loads(b) for b in JSON_LD_RE.findall(html)]
    for block in blocks:
        assert block["@context"] == "https://schema.org"
    return {b["@type"]: b for b in blocks}


def result_slugs(html: str) -> list[str]:
    return re.findall(r'<li data-term="([^"]+)"', html)


def test_index_lists_every_term_grouped_by_letter(client):
    resp = client.get(reverse("glossary:index"))
    assert resp.status_code == 200
    html = resp.content.decode()
    for term in Term.objects.all():
        assert f'href="{term.get_absolute_url()}"' in html
    assert 'id="letter-C"' in html and 'href="#letter-C"' in html
    assert 'id="letter-Q"' not in html  # no term starts with Q: the letter is shown but not linked
    assert html.index(">Best bid and ask<") < html.index(">Cumulative volume delta<")


def test_index_json_ld_is_a_defined_term_set(client):
    data = json_ld(client.get(reverse("glossary:index")).content.decode())
    term_set = data["DefinedTermSet"]
    assert term_set["name"] and term_set["url"].endswith("/glossary/")
    assert len(term_set["hasDefinedTerm"]) == Term.objects.count()
    for entry in term_set["hasDefinedTerm"]:
        assert entry["@type"] == "DefinedTerm" and entry["name"] and entry["description"] and entry["url"]
    assert data["BreadcrumbList"]["itemListElement"][0]["position"] == 1


@pytest.mark.parametrize(("query", "slug"), [
    ("CVD", "cumulative-volume-delta"), ("cvd", "cumulative-volume-delta"), ("OFI", "order-flow-imbalance"),
    ("funding rate", "funding-rate"), ("SPI", "selling-pressure-index"), ("Taker sell ratio", "taker-sell-ratio"),
])
def test_search_puts_the_named_term_first(client, query, slug):
    html = client.get(reverse("glossary:index"), {"q": query}).content.decode()
    assert result_slugs(html)[0] == slug


def test_search_matches_word_starts_not_substrings(client):
    slugs = result_slugs(client.get(reverse("glossary:index"), {"q": "OFI"}).content.decode())
    assert "profit-taking" not in slugs  # "pr-ofi-t"
    slugs = result_slugs(client.get(reverse("glossary:index"), {"q": "liquidat"}).content.decode())
    assert {"liquidation", "liquidation-cascade"} <= set(slugs)


def test_search_within_a_category(client):
    html = client.get(reverse("glossary:index"), {"q": "CVD", "category": "derivatives"}).content.decode()
    slugs = result_slugs(html)
    assert "cumulative-volume-delta" not in slugs and "spot-perp-divergence" in slugs


def test_empty_search_shows_help(client):
    resp = client.get(reverse("glossary:index"), {"q": "qwertyuiop"})
    html = resp.content.decode()
    assert resp.status_code == 200 and 'id="empty-state"' in html
    assert "No terms match “qwertyuiop”" in html and "CVD, OFI" in html


def test_category_filter(client):
    html = client.get(reverse("glossary:index"), {"category": "on-chain"}).content.decode()
    listed = set(re.findall(r'<div data-term="([^"]+)"', html))
    assert listed == set(Term.objects.filter(category="on-chain").values_list("slug", flat=True))
    assert 'class="chip active" href="?category=on-chain"' in html


def test_unknown_category_shows_everything_with_a_notice(client):
    html = client.get(reverse("glossary:index"), {"category": "astrology"}).content.decode()
    assert "There is no category" in html
    assert len(set(re.findall(r'<div data-term="([^"]+)"', html))) == Term.objects.count()


def test_every_term_page_renders(client):
    for term in Term.objects.all():
        resp = client.get(reverse("glossary:term", args=[term.slug]))
        assert resp.status_code == 200, term.slug
        html = resp.content.decode()
        assert "{{" not in html and "{%" not in html, term.slug  # every placeholder was filled
        for facet in FACETS:
            if getattr(term, facet.field):
                assert f">{facet.heading}</h2>" in html
        for related in term.related.all():
            assert f'href="{related.get_absolute_url()}"' in html


def test_unknown_term_is_404(client):
    assert client.get(reverse("glossary:term", args=["no-such-term"])).status_code == 404


def test_term_page_structure(client):
    term = Term.objects.get(slug="taker-sell-ratio")
    html = client.get(term.get_absolute_url()).content.decode()
    assert '<nav class="breadcrumbs"' in html and '<a href="/glossary/?category=order-flow">Order flow</a>' in html
    assert term.short in html
    assert 'id="shown-on"' in html and f'href="{reverse("dashboard:overview")}"' in html
    assert 'href="/glossary/cumulative-volume-delta/"' in html


def test_term_page_json_ld(client):
    term = Term.objects.get(slug="cumulative-volume-delta")
    data = json_ld(client.get(term.get_absolute_url()).content.decode())
    defined = data["DefinedTerm"]
    assert defined["name"] == term.title and defined["description"] == term.short
    assert defined["url"] == "http://testserver/glossary/cumulative-volume-delta/"
    assert defined["inDefinedTermSet"]["@type"] == "DefinedTermSet" and defined["inDefinedTermSet"]["url"]
    assert "CVD" in defined["alternateName"]
    questions = data["FAQPage"]["mainEntity"]
    assert len(questions) == 6
    for question in questions:
        assert question["@type"] == "Question" and question["name"]
        assert question["acceptedAnswer"]["@type"] == "Answer" and question["acceptedAnswer"]["text"]
    crumbs = data["BreadcrumbList"]["itemListElement"]
    assert [c["position"] for c in crumbs] == [1, 2, 3]
    assert [c["name"] for c in crumbs] == ["Glossary", "Order flow", term.title]
    assert all(c["item"].startswith("http://testserver/glossary/") for c in crumbs)


def test_placeholders_follow_settings(client, settings):
    url = reverse("glossary:term", args=["order-book-imbalance"])
    assert "0.1%, 0.5%, 1% and 2%" in client.get(url).content.decode()
    settings.BOOK_DEPTH_BANDS = (0.05, 0.25, 3.0)
    html = client.get(url).content.decode()
    assert "0.05%, 0.25% and 3%" in html and "0.1%, 0.5%, 1% and 2%" not in html


def test_regime_thresholds_default_when_unset(client, settings):
    if hasattr(settings, "SPI_REGIME_THRESHOLDS"):
        del settings.SPI_REGIME_THRESHOLDS
    html = client.get(reverse("glossary:term", args=["selling-pressure-index"])).content.decode()
    # The engine's defaults (apps.pressure.indicators.index.DEFAULT_REGIME_THRESHOLDS), not a glossary copy.
    assert "calm &lt; 64, elevated 64\u201374, high 74\u201382, extreme ≥ 82" in html


def test_a_term_with_script_in_its_body_is_sanitised_on_the_page(client):
    Term.objects.filter(slug="vwap").update(caveats='Careful <script>alert("x")</script><b onclick="x()">bold</b>')
    html = client.get(reverse("glossary:term", args=["vwap"])).content.decode()
    assert 'alert("x")' not in html and "onclick" not in html


def test_metric_chart_without_instruments(client):
    html = client.get(reverse("glossary:term", args=["taker-sell-ratio"])).content.decode()
    assert "No instrument to chart yet" in html and 'id="term-chart"' not in html


def test_concept_terms_have_no_chart(client):
    html = client.get(reverse("glossary:term", args=["market-maker"])).content.decode()
    assert 'class="term-chart"' not in html and 'id="shown-on"' not in html


def test_metric_chart_plots_the_last_hour_of_the_first_replay_instrument(client):
    inst = instrument_ensure(exchange_slug="binance-replay", exchange_name="Binance (REPLAY)", is_replay=True,
                             market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    now = datetime.now(tz=UTC).replace(second=0, microsecond=0)
    for minutes, delta in ((90, "9"), (3, "1.5"), (2, "-0.5"), (1, "0.25")):
        PressureBar.objects.create(instrument=inst, interval="1m", bucket_start=now - timedelta(minutes=minutes),
                                   close=Decimal(60000), delta_base=Decimal(delta), taker_sell_ratio=0.6, trades=3)
    html = client.get(reverse("glossary:term", args=["cumulative-volume-delta"])).content.decode()
    config = json.loads(re.search(r'<script id="term-chart-config" type="application/json">(.*?)</script>',
                                  html, re.DOTALL).group(1))
    assert config["instrument"] == inst.pk and config["metric"] == "cvd_base"
    assert config["cumulativeOf"] == "delta_base"
    assert [r["value"] for r in config["rows"]] == ["1.5", "1", "1.25"]  # the 90-minute-old bar is outside
    figure = json.loads(json.loads(re.search(
        r'<script id="term-figure-data" type="application/json">(.*?)</script>', html, re.DOTALL).group(1)))
    assert figure["data"][0]["y"] == [1.5, 1.0, 1.25] and figure["data"][0]["meta"] == {"y": "cvd_base"}
    assert 'src="/static/js/glossary.js"' in html
    assert f'href="{inst.get_absolute_url()}"' in html  # shown on the instrument page
    assert "<script>" not in html.split("</head>", 1)[1].replace('<script src=', "")  # no inline scripts


def test_shown_on_names_a_few_instrument_pages_and_counts_the_rest(client):
    instruments = [instrument_ensure(exchange_slug="many", market="spot", symbol=f"M{n}USDT", base=f"M{n}",
                                     quote="USDT") for n in range(9)]
    html = client.get(reverse("glossary:term", args=["cumulative-volume-delta"])).content.decode()
    shown_on = re.search(r'<div id="shown-on">(.*?)</div>', html, re.DOTALL).group(1)
    named = [inst for inst in instruments if f'href="{inst.get_absolute_url()}"' in shown_on]
    assert named == instruments[:6]
    assert f'<a href="{reverse("dashboard:overview")}">3 more instrument pages (Markets)</a>' in shown_on


def test_every_metric_term_names_the_pages_that_show_it():
    import re as _re
    from pathlib import Path

    from apps.glossary.selectors import METRIC_PAGES

    terms = Path(__file__).resolve().parents[2] / "apps" / "glossary" / "terms"
    metrics = {m.group(1) for f in terms.glob("*.md") if (m := _re.search(r"^metric: (\S+)$", f.read_text(), _re.M))}
    assert len(metrics) >= 25
    assert sorted(metrics - set(METRIC_PAGES)) == []
