"""Reads the glossary's Markdown term files, validates them all, and upserts them.

A file is YAML front matter between --- lines, then sections under the fixed facet headings.
Validation collects every problem in every file before anything is written, so one run shows
all that needs fixing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import yaml
from django.conf import settings

from apps.glossary.models import FACETS, Term
from apps.glossary.parameters import TEMPLATE_SYNTAX_RE, placeholders_unknown
from apps.glossary.services import LoadResult, TermSource, terms_upsert

TERMS_DIR = Path(__file__).resolve().parent / "terms"
REQUIRED_KEYS = ("slug", "title", "short", "category")
OPTIONAL_KEYS = ("synonyms", "related", "metric")
CATEGORIES = frozenset(Term.Category.values)
HEADING_TO_FIELD = {f.heading: f.field for f in FACETS}
# Every term explains these; "How does PressureWeb compute it?" is required only for terms with a metric.
REQUIRED_FACETS = frozenset(f.field for f in FACETS) - {"computation"}

_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*\n(.*)\Z", re.DOTALL)
_HEADING_RE = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_METRIC_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class GlossaryValidationError(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the glossary term files:\n" + "\n".join(problems))


def _string_list(value, key: str, problems: list[str]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(f"{key} must be a list of non-empty strings")
        return []
    return [v.strip() for v in value]


def _sections(body: str, problems: list[str]) -> dict[str, str]:
    matches = list(_HEADING_RE.finditer(body))
    if not matches:
        problems.append("no sections")
        return {}
    if body[: matches[0].start()].strip():
        problems.append("text before the first section heading")
    facets: dict[str, str] = {}
    for i, match in enumerate(matches):
        level, heading = match.group(1), match.group(2)
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        if level != "##" or heading not in HEADING_TO_FIELD:
            problems.append(f"heading {match.group(0).strip()!r} is not one of: "
                            + ", ".join(f"'## {h}'" for h in HEADING_TO_FIELD))
            continue
        name = HEADING_TO_FIELD[heading]
        if name in facets:
            problems.append(f"heading '## {heading}' appears twice")
            continue
        text = body[match.end():end].strip()
        if not text:
            problems.append(f"section '## {heading}' is empty")
        facets[name] = text
    return facets


def term_file_parse(path: Path) -> tuple[TermSource | None, list[str]]:
    """Parse one file: the term, and the problems found (a term is returned only when there are none)."""
    problems: list[str] = []
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    match = _FRONT_MATTER_RE.match(text)
    if match is None:
        return None, ["no front matter between '---' lines at the top"]
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        return None, [f"front matter is not valid YAML: {exc}"]
    if not isinstance(meta, dict):
        return None, ["front matter must be a mapping"]

    slug, category, metric = _front_matter_check(meta, path=path, problems=problems)
    synonyms = _string_list(meta.get("synonyms"), "synonyms", problems)
    related = _string_list(meta.get("related"), "related", problems)
    if slug in related:
        problems.append("a term cannot be related to itself")
    if len(set(related)) != len(related):
        problems.append("related lists a slug twice")

    facets = _sections(match.group(2), problems)
    missing = REQUIRED_FACETS - set(facets)
    if metric:
        missing |= {"computation"} - set(facets)
    for facet in FACETS:
        if facet.field in missing:
            problems.append(f"section '## {facet.heading}' is missing")

    title, short = str(meta.get("title") or "").strip(), str(meta.get("short") or "").strip()
    _placeholders_check(facets, fixed=(("title", title), ("short", short), *(("synonyms", s) for s in synonyms)),
                        problems=problems)
    if problems:
        return None, problems
    try:
        source_path = str(path.resolve().relative_to(settings.BASE_DIR))
    except ValueError:
        source_path = str(path)
    return TermSource(
        slug=slug, title=title, short=short, category=category, synonyms=synonyms, related=related,
        metric=metric, facets=facets, source_path=source_path,
    ), []


def _front_matter_check(meta: dict, *, path: Path, problems: list[str]) -> tuple[str, str, str]:
    """The keys, slug, category and metric checked (problems appended); the slug, category and metric."""
    for key in REQUIRED_KEYS:
        if not isinstance(meta.get(key), str) or not meta[key].strip():
            problems.append(f"{key} is required (a non-empty string)")
    for key in sorted(set(meta) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS)):
        problems.append(f"unknown front matter key {key!r}")
    slug = str(meta.get("slug") or "").strip()
    if slug and slug != path.stem:
        problems.append(f"slug {slug!r} does not match the file name {path.name!r}")
    if slug and not _SLUG_RE.match(slug):
        problems.append(f"slug {slug!r} must be lower-case words joined by hyphens")
    category = str(meta.get("category") or "").strip()
    if category and category not in CATEGORIES:
        problems.append(f"category {category!r} is not one of {', '.join(sorted(CATEGORIES))}")
    metric = meta.get("metric") or ""
    if not isinstance(metric, str) or (metric and not _METRIC_RE.match(metric)):
        problems.append(f"metric {metric!r} must be an API field name such as taker_sell_ratio")
        metric = ""
    return slug, category, metric


def _placeholders_check(facets: dict[str, str], *, fixed: tuple, problems: list[str]) -> None:
    """Placeholders belong in sections, and only known ones: ``fixed`` is (where, text) of the plain fields."""
    for where, value in fixed:
        if TEMPLATE_SYNTAX_RE.search(value):
            problems.append(f"{where}: placeholders are only allowed in sections")
    for facet in FACETS:
        for fragment in placeholders_unknown(facets.get(facet.field, "")):
            problems.append(f"section '## {facet.heading}': unknown placeholder {fragment}")


def term_sources_read(*, directory: Path = TERMS_DIR) -> list[TermSource]:
    """Every term file in directory, parsed and cross-checked; raises GlossaryValidationError listing all problems."""
    paths = sorted(Path(directory).glob("*.md"))
    if not paths:
        raise GlossaryValidationError([f"{directory}: no *.md term files"])
    problems: list[str] = []
    sources: list[TermSource] = []
    for path in paths:
        source, found = term_file_parse(path)
        problems += [f"{path.name}: {p}" for p in found]
        if source is not None:
            sources.append(source)
    slugs = {path.stem for path in paths}
    for source in sources:
        for slug in source.related:
            if slug not in slugs:
                problems.append(f"{source.slug}.md: related slug {slug!r} has no term file")
    if problems:
        raise GlossaryValidationError(problems)
    return sources


def glossary_load(
    *, directory: Path = TERMS_DIR, term_model=None, progress: Callable[[TermSource], None] | None = None
) -> LoadResult:
    """Validate every file, then upsert: created / updated / unchanged slugs. Terms without a file are kept."""
    sources = term_sources_read(directory=directory)
    return terms_upsert(sources=sources, term_model=term_model, progress=progress)
