from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from apps.glossary.parameters import TEMPLATE_SYNTAX_RE, placeholders_unknown


@dataclass(frozen=True)
class Facet:
    field: str
    heading: str  # exactly as written in the term files


FACETS = (
    Facet("what_is_it", "What is it?"),
    Facet("market_adjustment", "How do markets adjust to it?"),
    Facet("algorithms", "How do algorithms act on it?"),
    Facet("computation", "How does PressureWeb compute it?"),
    Facet("reading", "How to read it"),
    Facet("caveats", "Caveats"),
)
FACET_FIELDS = tuple(f.field for f in FACETS)

# Moved on after every committed change to a term or its links (services.glossary_version_bump):
# the glossary pages' cached parts are kept per version (pressureweb/payload_cache.py).
GLOSSARY_VERSION_KEY = "glossary:version"


def synonyms_text_build(synonyms: list[str]) -> str:
    """Lower-case synonyms between bars, "|cvd|cumulative delta|", so an exact synonym is a substring match."""
    cleaned = [s.strip().lower() for s in synonyms if s.strip()]
    return f"|{'|'.join(cleaned)}|" if cleaned else ""


def body_text_build(facets: dict[str, str]) -> str:
    return "\n\n".join(facets.get(name, "") for name in FACET_FIELDS if facets.get(name))


class Term(models.Model):
    """One glossary concept. Term files in apps/glossary/terms are the source: load_glossary overwrites edits."""

    class Category(models.TextChoices):
        ORDER_FLOW = "order-flow", "Order flow"
        ORDER_BOOK = "order-book", "Order book"
        DERIVATIVES = "derivatives", "Derivatives"
        ON_CHAIN = "on-chain", "On-chain"
        INDEX = "index", "Index"
        MARKET_STRUCTURE = "market-structure", "Market structure"

    slug = models.SlugField(max_length=80, unique=True)
    title = models.CharField(max_length=120)
    short = models.TextField(help_text="One-sentence definition, shown in link tooltips and lists.")
    category = models.CharField(max_length=32, choices=Category.choices)
    synonyms = models.JSONField(default=list, blank=True, help_text="Other names and abbreviations, for search.")
    metric = models.CharField(
        max_length=64, blank=True, help_text="API field this term explains, e.g. taker_sell_ratio; blank for concepts."
    )
    what_is_it = models.TextField("What is it?", blank=True)
    market_adjustment = models.TextField("How do markets adjust to it?", blank=True)
    algorithms = models.TextField("How do algorithms act on it?", blank=True)
    computation = models.TextField("How does PressureWeb compute it?", blank=True)
    reading = models.TextField("How to read it", blank=True)
    caveats = models.TextField("Caveats", blank=True)
    related = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="related_from")
    source_path = models.CharField(max_length=255, blank=True, help_text="Term file, relative to the project.")
    # Denormalised for search: the SQLite fallback matches word starts in them, PostgreSQL builds vectors.
    synonyms_text = models.TextField(blank=True, editable=False)
    body_text = models.TextField(blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs):
        self.search_fields_fill()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "synonyms_text", "body_text"}
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("glossary:term", args=[self.slug])

    def search_fields_fill(self) -> None:
        self.synonyms_text = synonyms_text_build(self.synonyms or [])
        self.body_text = body_text_build(self.facets)

    def clean(self) -> None:
        errors = {}
        if not isinstance(self.synonyms, list) or not all(isinstance(s, str) for s in self.synonyms):
            errors["synonyms"] = "A list of strings."
        for name in FACET_FIELDS:
            unknown = placeholders_unknown(getattr(self, name) or "")
            if unknown:
                errors[name] = f"Unknown placeholders: {', '.join(unknown)}"
        for name in ("title", "short"):
            if TEMPLATE_SYNTAX_RE.search(getattr(self, name) or ""):
                errors[name] = "Placeholders are only allowed in the sections."
        if errors:
            raise ValidationError(errors)

    @property
    def facets(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in FACET_FIELDS}
