from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from apps.flows.services import DEFAULT_LABEL_FILES, wallet_labels_import
from pressureweb import embedded_redis


def _rows(path: Path) -> int:
    with path.open(encoding="utf-8") as fh:
        return max(0, sum(1 for _ in fh) - 1)


class Command(BaseCommand):
    help = ("Load exchange wallet labels (chain,address,exchange,label,source CSV; default: the shipped "
            "data/wallet-labels files). Addresses are validated; re-running changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", type=Path, help="CSV files (default: data/wallet-labels/*.csv)")

    def handle(self, *args, paths, **options):
        paths = paths or list(DEFAULT_LABEL_FILES)
        for path in paths:
            if not path.exists():
                raise CommandError(f"{path} does not exist")
        # A label change moves the flows page's cache version in Redis.
        try:
            with embedded_redis.available():
                self._import(paths)
        except embedded_redis.PortTaken as exc:
            raise CommandError(str(exc)) from None

    def _import(self, paths: list[Path]) -> None:
        console = Console(file=self.stdout, highlight=False, soft_wrap=True)
        totals = {p: _rows(p) for p in paths}
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            tasks = {p.name: progress.add_task(p.name, total=totals[p]) for p in paths}
            offset = {"read": 0, "name": None}

            def advance(path: Path, read: int) -> None:
                if offset["name"] != path.name:
                    offset["name"], offset["read"] = path.name, read - 1
                progress.update(tasks[path.name], completed=read - offset["read"])

            try:
                result = wallet_labels_import(paths=paths, progress=advance)
            except (ValueError, UnicodeDecodeError) as exc:
                raise CommandError(str(exc)) from exc
        for name, line, address, reason in result.rejected:
            self.stdout.write(self.style.WARNING(f"rejected {name} line {line}: {address!r}: {reason}"))
        table = Table(title="Exchange wallet labels")
        for col in ("rows read", "created", "updated", "unchanged", "rejected", "per chain"):
            table.add_column(col, justify="right")
        table.add_row(f"{result.read:,}", f"{result.created:,}", f"{result.updated:,}", f"{result.unchanged:,}",
                      f"{len(result.rejected):,}", ", ".join(f"{c} {n:,}" for c, n in sorted(result.by_chain.items())))
        console.print(table)
        self.stdout.write(self.style.SUCCESS(
            f"read {result.read:,}, created {result.created:,}, updated {result.updated:,}, "
            f"unchanged {result.unchanged:,}, rejected {len(result.rejected):,}"
        ))
