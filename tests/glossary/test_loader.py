import shutil
from pathlib import Path

import pytest

from apps.glossary.loader import TERMS_DIR, GlossaryValidationError, glossary_load, term_sources_read
from apps.glossary.models import FACET_FIELDS, Term

pytestmark = pytest.mark.django_db

GOOD = """---
slug: {slug}
title: {title}
short: A short definition.
category: order-flow
synonyms: [ABC, alpha beta]
related: [{related}]
metric: taker_sell_ratio
---
## What is it?
What {{{{ SPI_WINDOW_BARS }}}}.

## How do markets adjust to it?
Markets.

## How do algorithms act on it?
Algorithms.

## How does PressureWeb compute it?
Computation.

## How to read it
Reading.

## Caveats
Caveats.
"""


def write(directory: Path, slug: str, text: str) -> None:
    (directory / f"{slug}.md").write_text(text, encoding="utf-8")


def test_the_data_migration_loaded_the_glossary():
    assert Term.objects.count() >= 40
    assert Term.objects.filter(slug="cumulative-volume-delta", synonyms__icontains="CVD").exists()


def test_loading_again_changes_nothing():
    first = glossary_load()
    assert first.counts["created"] == 0  # the migration already loaded everything
    second = glossary_load()
    assert second.counts == {"created": 0, "updated": 0, "unchanged": len(list(TERMS_DIR.glob("*.md")))}


def test_load_into_an_empty_table_then_again():
    Term.objects.all().delete()
    first = glossary_load()
    total = len(list(TERMS_DIR.glob("*.md")))
    assert first.counts == {"created": total, "updated": 0, "unchanged": 0}
    assert glossary_load().counts == {"created": 0, "updated": 0, "unchanged": total}


def test_an_edited_term_is_restored_from_its_file():
    term = Term.objects.get(slug="taker-sell-ratio")
    term.title, term.caveats = "Edited", "Edited caveats"
    term.save()
    term.related.clear()
    Term.objects.filter(slug="vwap").first().related.add(term)
    result = glossary_load()
    assert sorted(result.updated) == ["taker-sell-ratio", "vwap"]
    term.refresh_from_db()
    assert term.title == "Taker sell ratio" and "low-volume bars" in term.caveats
    assert term.related.filter(slug="cumulative-volume-delta").exists()


def test_every_related_slug_resolves():
    for source in term_sources_read():
        term = Term.objects.get(slug=source.slug)
        assert sorted(term.related.values_list("slug", flat=True)) == sorted(source.related)
        assert len(source.related) >= 1


def test_every_metric_term_has_all_facets():
    metric_terms = Term.objects.exclude(metric="")
    assert metric_terms.count() >= 20
    for term in metric_terms:
        missing = [name for name in FACET_FIELDS if not getattr(term, name).strip()]
        assert not missing, f"{term.slug} lacks {missing}"


def test_every_term_explains_the_reader_facets():
    for term in Term.objects.all():
        for name in ("what_is_it", "market_adjustment", "algorithms", "reading", "caveats"):
            assert getattr(term, name).strip(), f"{term.slug}.{name}"


def test_search_fields_are_filled_by_the_loader():
    term = Term.objects.get(slug="order-flow-imbalance")
    assert "|ofi|" in term.synonyms_text
    assert term.what_is_it in term.body_text and term.caveats in term.body_text


def test_a_valid_directory_loads(tmp_path):
    write(tmp_path, "alpha", GOOD.format(slug="alpha", title="Alpha", related="beta"))
    write(tmp_path, "beta", GOOD.format(slug="beta", title="Beta", related="alpha"))
    result = glossary_load(directory=tmp_path)
    assert sorted(result.created) == ["alpha", "beta"]
    alpha = Term.objects.get(slug="alpha")
    assert alpha.synonyms == ["ABC", "alpha beta"] and alpha.metric == "taker_sell_ratio"
    assert alpha.what_is_it == "What {{ SPI_WINDOW_BARS }}."  # stored raw, filled when rendered
    assert list(alpha.related.values_list("slug", flat=True)) == ["beta"]


@pytest.mark.parametrize(("slug", "text", "problem"), [
    ("alpha", GOOD.format(slug="other", title="A", related="beta"), "does not match the file name"),
    ("alpha", GOOD.format(slug="alpha", title="A", related="beta").replace("order-flow", "gossip"),
     "category 'gossip' is not one of"),
    ("alpha", GOOD.format(slug="alpha", title="A", related="beta").replace("## Caveats", "## Warnings"),
     "heading '## Warnings' is not one of"),
    ("alpha", GOOD.format(slug="alpha", title="A", related="beta").replace("## Caveats", "### Caveats"),
     "heading '### Caveats' is not one of"),
    ("alpha", GOOD.format(slug="alpha", title="A", related="gamma"), "related slug 'gamma' has no term file"),
    ("alpha", GOOD.format(slug="alpha", title="A", related="beta").replace("SPI_WINDOW_BARS", "SPI_WINDOW"),
     "unknown placeholder {{ SPI_WINDOW }}"),
    ("alpha", GOOD.format(slug="alpha", title="A", related="beta").replace("## How does PressureWeb compute it?\n"
                                                                           "Computation.\n", ""),
     "section '## How does PressureWeb compute it?' is missing"),
    ("alpha", GOOD.format(slug="alpha", title="'{{ VPIN_BUCKETS }}'", related="beta"),
     "placeholders are only allowed in sections"),
    ("alpha", "no front matter", "no front matter"),
    ("alpha", GOOD.format(slug="alpha", title="A", related="beta").replace("short:", "sort:"),
     "short is required"),
])
def test_invalid_files_are_rejected_with_every_problem(tmp_path, slug, text, problem):
    write(tmp_path, "beta", GOOD.format(slug="beta", title="Beta", related="alpha"))
    write(tmp_path, slug, text)
    before = Term.objects.count()
    with pytest.raises(GlossaryValidationError) as caught:
        glossary_load(directory=tmp_path)
    assert any(problem in p for p in caught.value.problems), caught.value.problems
    assert Term.objects.count() == before  # nothing written


def test_the_bundled_files_are_valid(tmp_path):
    copy = tmp_path / "terms"
    shutil.copytree(TERMS_DIR, copy)
    assert len(term_sources_read(directory=copy)) == len(list(TERMS_DIR.glob("*.md")))


def test_an_upgraded_database_gets_the_new_and_corrected_terms_from_migrate():
    # Upgrades run `migrate` only: the 0003 data migration reloads the files into a database that had the old set.
    import importlib

    from django.apps import apps
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    assert ("glossary", "0003_reload_terms_issue16") in MigrationLoader(connection).graph.leaf_nodes()
    Term.objects.filter(slug__in=["drop-risk", "final-bar"]).delete()
    Term.objects.filter(slug="vpin").update(title="VPIN", computation="Trades are accumulated into buckets.")
    migration = importlib.import_module("apps.glossary.migrations.0003_reload_terms_issue16")
    migration.reload_terms(apps, None)
    assert Term.objects.filter(slug__in=["drop-risk", "final-bar"]).count() == 2
    vpin = Term.objects.get(slug="vpin")
    assert vpin.title == "VPIN (bar proxy)" and "bar proxy" in vpin.computation
    assert Term.objects.count() == len(list(TERMS_DIR.glob("*.md")))
