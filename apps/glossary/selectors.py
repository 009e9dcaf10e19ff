"""Reads of glossary terms: lookups, search, the A-Z index, and where each metric is shown."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Case, FloatField, IntegerField, Q, QuerySet, Value, When
from django.urls import reverse

from apps.glossary.loader import GlossaryValidationError, term_sources_read
from apps.glossary.models import GLOSSARY_VERSION_KEY, Term
from apps.markets.models import Instrument
from apps.markets.naming import instrument_full_name
from apps.pressure.selectors import bars_for_range
from pressureweb.payload_cache import cached_while_rebuilt, version_get

# Bar fields the term page can chart live (they exist in apps.pressure.selectors.bars_for_range rows).
CHARTABLE_METRICS = frozenset({
    "taker_buy_base", "taker_sell_ratio", "delta_base", "cvd_base", "spread_bps", "imbalance_0_1pct",
    "imbalance_1pct", "vwap", "close",
})

# Where each metric is on screen: (label, URL name) or INSTRUMENT_PAGES, which expands to one link per
# active instrument. Keep in step with templates/dashboard/overview.html and apps/dashboard/charts.py.
INSTRUMENT_PAGES = "instrument-pages"
_OVERVIEW = ("Markets overview", "dashboard:overview")
_EPISODES = ("Episodes", "dashboard:episodes")
_TRACK_RECORD = ("Track record", "dashboard:track-record")
_FLOWS = ("Exchange flows", "flows:page")
METRIC_PAGES: dict[str, tuple] = {
    "close": (_OVERVIEW, INSTRUMENT_PAGES),
    "vwap": (INSTRUMENT_PAGES,),
    "taker_buy_base": (INSTRUMENT_PAGES,),
    "taker_sell_ratio": (_OVERVIEW, INSTRUMENT_PAGES),
    # The overview's CVD change over the last hour is the sum of the 1m deltas.
    "delta_base": (_OVERVIEW, INSTRUMENT_PAGES),
    "cvd_base": (_OVERVIEW, INSTRUMENT_PAGES),
    "spread_bps": (_OVERVIEW, INSTRUMENT_PAGES),
    "imbalance_0_1pct": (INSTRUMENT_PAGES,),
    "imbalance_0_5pct": (INSTRUMENT_PAGES,),
    "imbalance_1pct": (INSTRUMENT_PAGES,),
    "spi": (_OVERVIEW, INSTRUMENT_PAGES, _EPISODES, _TRACK_RECORD),
    # Index components: the instrument page's index panel charts each one's contribution.
    "ofi": (INSTRUMENT_PAGES,),
    "vpin": (INSTRUMENT_PAGES,),
    "kyles_lambda": (INSTRUMENT_PAGES,),
    "large_trade_sell_share": (INSTRUMENT_PAGES,),
    "trade_count_imbalance": (INSTRUMENT_PAGES,),
    # The derivatives panel of perpetual (and BTC/ETH) instrument pages.
    "funding_rate": (INSTRUMENT_PAGES,),
    "open_interest": (INSTRUMENT_PAGES,),
    "long_liquidation_quote": (INSTRUMENT_PAGES,),
    "dvol": (INSTRUMENT_PAGES,),
    "inflow": (_FLOWS,),
    "outflow": (_FLOWS,),
    "netflow": (_FLOWS,),
    "netflow_z": (_FLOWS,),
    "reserve": (_FLOWS,),
    "whale_ratio": (_FLOWS,),
    "stablecoin_netflow": (_FLOWS,),
}

# The cache serves {% term %} on every page. Saves in this process clear it at once (signals in
# apps.py); other processes (Daphne, Celery) pick up admin edits within the TTL.
TERM_LINKS_TTL_SECONDS = 60


@dataclass(frozen=True)
class TermLink:
    slug: str
    title: str
    short: str
    category: str
    url: str


_links_lock = threading.Lock()
_links: dict[str, TermLink] | None = None
_links_loaded_at = 0.0


def term_url(slug: str) -> str:
    return reverse("glossary:term", args=[slug])


def term_links_clear(**_signal_kwargs) -> None:
    global _links
    with _links_lock:
        _links = None


def term_links() -> dict[str, TermLink]:
    """Every term's link data by slug, from the in-process cache."""
    global _links, _links_loaded_at
    links = _links
    if links is not None and time.monotonic() - _links_loaded_at < TERM_LINKS_TTL_SECONDS:
        return links
    rows = list(Term.objects.values_list("slug", "title", "short", "category"))
    if not rows:
        # An empty table (a test database flushed by a transactional test, or a load not yet run) must not
        # break every page that links a term: the term files are the source of the slugs anyway.
        try:
            rows = [(s.slug, s.title, s.short, s.category) for s in term_sources_read()]
        except GlossaryValidationError:
            rows = []
    links = {slug: TermLink(slug, title, short, category, term_url(slug)) for slug, title, short, category in rows}
    with _links_lock:
        _links, _links_loaded_at = links, time.monotonic()
    return links


def term_link(*, slug: str) -> TermLink | None:
    return term_links().get(slug)


def glossary_version() -> int | None:
    """None when Redis is unreachable: the pages then read the glossary from the database."""
    return version_get(GLOSSARY_VERSION_KEY, what="the glossary")


def term_get(*, slug: str) -> Term | None:
    """The term with its related terms, cached per glossary version (in Redis and each web process); read only."""
    version = glossary_version()
    key = None if version is None else f"glossary:term:{slug}"
    return cached_while_rebuilt(key, version, lambda: Term.objects.filter(slug=slug).prefetch_related("related")
                                .first(), stale_seconds=0)


def terms_list(*, category: str | None = None) -> QuerySet[Term]:
    terms = Term.objects.order_by("title")
    return terms.filter(category=category) if category else terms


def _search_postgresql(terms: QuerySet[Term], query: str) -> QuerySet[Term]:
    # Imported here: the module works without django.contrib.postgres in INSTALLED_APPS.
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

    vector = (SearchVector("title", weight="A", config="english")
              + SearchVector("synonyms_text", weight="A", config="english")
              + SearchVector("short", weight="B", config="english")
              + SearchVector("body_text", weight="C", config="english"))
    search = SearchQuery(query, search_type="websearch", config="english")
    # Word-start matches on names catch partial words while typing ("liquid", "imbal").
    pattern = _word_pattern(query)
    return (terms.annotate(document=vector)
            .filter(Q(document=search) | Q(title__iregex=pattern) | Q(synonyms_text__iregex=pattern))
            .annotate(rank=SearchRank(vector, search) + _name_bonus(query, FloatField()))
            .order_by("-rank", "title"))


def _word_pattern(text: str) -> str:
    """A regex matching text at a word start: "ofi" finds "OFI" but not "profit", "liquid" finds "liquidation"."""
    escaped = re.escape(text)
    if not text[:1].isalnum():
        return escaped
    # PostgreSQL's regex dialect spells "start of word" \m (its \b is a backspace).
    return rf"\m{escaped}" if connection.vendor == "postgresql" else rf"\b{escaped}"


def _name_bonus(query: str, output_field):
    """Exact title, then exact synonym, then a title or synonym word starting with the query."""
    pattern = _word_pattern(query)
    return Case(
        When(title__iexact=query, then=Value(12)),
        When(synonyms_text__contains=f"|{query.lower()}|", then=Value(10)),
        When(title__iregex=pattern, then=Value(6)),
        When(synonyms_text__iregex=pattern, then=Value(5)),
        default=Value(0), output_field=output_field,
    )


def _search_fallback(terms: QuerySet[Term], query: str) -> QuerySet[Term]:
    # Django backs __iregex on SQLite with Python's re, so word starts work without full-text search.
    for word in query.split():
        pattern = _word_pattern(word)
        terms = terms.filter(Q(title__iregex=pattern) | Q(synonyms_text__iregex=pattern) | Q(short__iregex=pattern)
                             | Q(body_text__iregex=pattern))
    pattern = _word_pattern(query)
    in_short = Case(When(short__iregex=pattern, then=Value(2)), default=Value(0), output_field=IntegerField())
    in_body = Case(When(body_text__iregex=pattern, then=Value(1)), default=Value(0), output_field=IntegerField())
    return (terms.annotate(rank=_name_bonus(query, IntegerField()) + in_short + in_body)
            .order_by("-rank", "title"))


def terms_search(*, query: str, category: str | None = None) -> list[Term]:
    """Terms matching query, best first: full-text on PostgreSQL, case-insensitive word starts elsewhere."""
    query = " ".join(query.split())[:200]
    if not query:
        return list(terms_list(category=category))
    terms = terms_list(category=category)
    if connection.vendor == "postgresql":
        return list(_search_postgresql(terms, query))
    return list(_search_fallback(terms, query))


def index_letter(title: str) -> str:
    first = title[:1].upper()
    return first if "A" <= first <= "Z" else "#"


def terms_by_letter(*, terms) -> list[tuple[str, list[Term]]]:
    groups: dict[str, list[Term]] = {}
    for term in sorted(terms, key=lambda t: t.title.lower()):
        groups.setdefault(index_letter(term.title), []).append(term)
    return sorted(groups.items(), key=lambda item: (item[0] == "#", item[0]))


def category_counts() -> list[tuple[str, str, int]]:
    """(value, label, number of terms) for every category, in display order."""
    counts: dict[str, int] = {}
    for category in Term.objects.values_list("category", flat=True):
        counts[category] = counts.get(category, 0) + 1
    return [(value, label, counts.get(value, 0)) for value, label in Term.Category.choices]


def metric_pages(*, metric: str, instruments_shown: int = 6) -> list[tuple[str, str]]:
    """(label, URL) of the pages that show this metric: every instrument page is one, of which the
    first ``instruments_shown`` are named and the rest counted with a link to the Markets overview."""
    pages = []
    for place in METRIC_PAGES.get(metric, ()):
        if place == INSTRUMENT_PAGES:
            active = Instrument.objects.active().with_exchange()
            named = list(active[:instruments_shown])
            pages += [(instrument_full_name(inst), inst.get_absolute_url()) for inst in named]
            if not named:
                pages.append(("Instrument pages (none yet; see Markets)", reverse("dashboard:overview")))
            elif len(named) == instruments_shown and (more := active.count() - instruments_shown) > 0:
                pages.append((f"{more:,} more instrument page{'s' if more > 1 else ''} (Markets)",
                              reverse("dashboard:overview")))
        else:
            label, url_name = place
            pages.append((label, reverse(url_name)))
    return pages


def chart_instrument() -> Instrument | None:
    """The instrument term pages chart: the first replay instrument (always has data once replay runs)."""
    return Instrument.objects.active().with_exchange().filter(exchange__is_replay=True).first()


def metric_recent_bars(*, instrument: Instrument, minutes: int = 60, now: datetime | None = None) -> list[dict]:
    """1m bars of the last `minutes`, as the API shapes them (CVD summed from the first bar)."""
    end = now or datetime.now(tz=UTC)
    return bars_for_range(instrument=instrument, interval="1m", start=end - timedelta(minutes=minutes), end=end)
