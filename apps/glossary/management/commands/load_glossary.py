from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from apps.glossary.loader import TERMS_DIR, GlossaryValidationError, glossary_load, term_sources_read
from apps.glossary.selectors import term_links_clear


class Command(BaseCommand):
    help = "Validate the glossary term files and upsert them (idempotent: unchanged terms are not written)."

    def add_arguments(self, parser):
        parser.add_argument("--dir", dest="directory", type=Path, default=TERMS_DIR,
                            help="Term files directory (default %(default)s).")
        parser.add_argument("--check", action="store_true", help="Only validate the files; write nothing.")

    def handle(self, *args, directory: Path, check: bool, **options):
        try:
            if check:
                sources = term_sources_read(directory=directory)
                self.stdout.write(self.style.SUCCESS(f"{len(sources)} term files are valid."))
                return
            total = len(list(directory.glob("*.md")))
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          disable=options["verbosity"] == 0) as progress:
                task = progress.add_task("glossary terms", total=total)
                result = glossary_load(directory=directory, progress=lambda source: progress.advance(task))
        except GlossaryValidationError as exc:
            raise CommandError(str(exc)) from exc
        term_links_clear()
        counts = result.counts
        self.stdout.write(self.style.SUCCESS(
            f"{sum(counts.values())} glossary terms: {counts['created']} created, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged."
        ))
        for outcome in ("created", "updated"):
            slugs = getattr(result, outcome)
            if slugs and options["verbosity"] > 1:
                self.stdout.write(f"{outcome}: {', '.join(slugs)}")
