"""Writes of glossary terms.

term_model is a parameter so the data migration can pass its historical model; with the live
model it defaults to Term. Both paths compute the denormalised search fields here, because
historical models do not run Term.save().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

from apps.glossary.models import FACET_FIELDS, GLOSSARY_VERSION_KEY, Term, body_text_build, synonyms_text_build
from pressureweb.payload_cache import version_bump

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


@dataclass(frozen=True)
class TermSource:
    """A term as parsed and validated from its file."""

    slug: str
    title: str
    short: str
    category: str
    synonyms: list[str]
    related: list[str]
    metric: str
    facets: dict[str, str]
    source_path: str

    def field_values(self) -> dict:
        return {
            "title": self.title, "short": self.short, "category": self.category, "synonyms": list(self.synonyms),
            "metric": self.metric, "source_path": self.source_path,
            **{name: self.facets.get(name, "") for name in FACET_FIELDS},
            "synonyms_text": synonyms_text_build(self.synonyms), "body_text": body_text_build(self.facets),
        }


@dataclass
class LoadResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {CREATED: len(self.created), UPDATED: len(self.updated), UNCHANGED: len(self.unchanged)}


def term_upsert(*, source: TermSource, term_model=None) -> tuple[object, str]:
    """Create or update one term's own fields (not its related links); saves only when something differs."""
    model = term_model or Term
    values = source.field_values()
    term = model.objects.filter(slug=source.slug).first()
    if term is None:
        term = model(slug=source.slug, **values)
        # The live model's save() fills the search fields too; setting them first keeps both paths equal.
        term.save()
        return term, CREATED
    changed = [name for name, value in values.items() if getattr(term, name) != value]
    if not changed:
        return term, UNCHANGED
    for name in changed:
        setattr(term, name, values[name])
    term.save(update_fields=[*changed, "updated_at"])
    return term, UPDATED


def term_related_set(*, term, slugs: list[str], by_slug: dict[str, object]) -> bool:
    """Point term.related at exactly these slugs; returns whether anything changed."""
    wanted = {by_slug[s].pk for s in slugs}
    current = set(term.related.values_list("pk", flat=True))
    if wanted == current:
        return False
    term.related.set(wanted)
    return True


def terms_upsert(
    *, sources: list[TermSource], term_model=None, progress: Callable[[TermSource], None] | None = None
) -> LoadResult:
    """Upsert every term, then their related links, in one transaction: running it twice changes nothing."""
    result = LoadResult()
    outcomes: dict[str, str] = {}
    with transaction.atomic():
        by_slug = {}
        for source in sources:
            term, outcome = term_upsert(source=source, term_model=term_model)
            by_slug[source.slug] = term
            outcomes[source.slug] = outcome
            if progress:
                progress(source)
        for source in sources:
            changed = term_related_set(term=by_slug[source.slug], slugs=source.related, by_slug=by_slug)
            if changed and outcomes[source.slug] == UNCHANGED:
                outcomes[source.slug] = UPDATED
                # Only the links changed: still mark the term as edited.
                by_slug[source.slug].save(update_fields=["updated_at"])
    for slug, outcome in outcomes.items():
        getattr(result, outcome).append(slug)
    return result


def glossary_version_bump() -> None:
    version_bump(GLOSSARY_VERSION_KEY)


def glossary_changed(**_signal_kwargs) -> None:
    """Receiver of every change to a term or its related links: the cached glossary pages move on after commit,
    so no reader caches the previous rows under the new version."""
    transaction.on_commit(glossary_version_bump)
