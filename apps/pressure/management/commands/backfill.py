from datetime import UTC, date, datetime
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TransferSpeedColumn

from apps.markets.binance_vision import KINDS, MARKETS, ArchiveProblem, archive_fetch, archive_plan, vision_session
from apps.markets.klines import KLINE_INTERVAL_MS


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {text!r}") from exc


class Command(BaseCommand):
    help = ("Download data.binance.vision archives for the days --from..--to (UTC, both included): monthly archives"
            " for whole months, daily ones for the rest and for months not published yet. Each archive is checked"
            " against its CHECKSUM file before it is imported (with import_klines or import_trades); a mismatch is"
            " refused. Verified archives stay in BACKFILL_DIR and are not fetched again; a run cut short continues"
            " where it stopped. Days not published yet are listed and skipped.")

    def add_arguments(self, parser):
        parser.add_argument("--exchange", choices=["binance"], default="binance")
        parser.add_argument("--market", choices=sorted(MARKETS), default="spot")
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--kind", choices=KINDS, required=True)
        parser.add_argument("--interval", choices=list(KLINE_INTERVAL_MS), default="5m", help="klines only")
        parser.add_argument("--from", dest="start", required=True, type=_day)
        parser.add_argument("--to", dest="end", required=True, type=_day)
        parser.add_argument("--reimport", action="store_true", help="import archives imported before again")

    def handle(self, *args, exchange, market, symbol, kind, interval, start, end, reimport, **options):
        symbol = symbol.upper()
        today = datetime.now(tz=UTC).date()
        if start > end:
            raise CommandError(f"--from {start} is after --to {end}")
        if end > today:
            raise CommandError(f"--to {end} is in the future (today is {today} UTC)")
        try:
            plan = archive_plan(market=market, symbol=symbol, kind=kind, interval=interval, start=start, end=end)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{len(plan)} archives from {settings.BINANCE_VISION_URL} into {settings.BACKFILL_DIR}")
        problems: list[str] = []
        unpublished: list[str] = []
        ready = self._download(plan, problems, unpublished)
        imported = skipped = 0
        for path in ready:
            if not reimport and self._imported_before(path, exchange, market, symbol):
                skipped += 1
                continue
            args = [str(path), "--exchange", exchange, "--market", market, "--symbol", symbol]
            try:
                if kind == "klines":
                    call_command("import_klines", *args, "--interval", interval, stdout=self.stdout, stderr=self.stderr)
                else:
                    call_command("import_trades", *args, stdout=self.stdout, stderr=self.stderr)
            except CommandError as exc:
                problems.append(str(exc))
                continue
            self._mark_imported(path, exchange, market, symbol)
            imported += 1
        self.stdout.write(self.style.SUCCESS(
            f"{symbol} {kind}: {len(ready)} archives verified, {imported} imported now, {skipped} imported before"
            f" (--reimport to import them again)"))
        if unpublished:
            self.stdout.write(self.style.WARNING(f"not published (yet): {', '.join(unpublished)}"))
        if problems:
            raise CommandError(problems[0] if len(problems) == 1 else
                               f"{len(problems)} archives failed: " + " | ".join(problems))

    def _download(self, plan, problems: list[str], unpublished: list[str]) -> list[Path]:
        """Fetch and verify every archive of the plan (a month not published falls back to its days)."""
        session = vision_session()
        ready: list[Path] = []
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[file]}"), DownloadColumn(), TransferSpeedColumn()) as progress:
            overall = progress.add_task("archives", total=len(plan), file="")
            queue = list(plan)
            while queue:
                archive = queue.pop(0)
                progress.update(overall, file=archive.name)
                current = progress.add_task(f"  {archive.name}", total=None, file="")
                try:
                    got = archive_fetch(session=session, archive=archive,
                                        progress=lambda done, total, t=current: progress.update(
                                            t, completed=done, total=total))
                except ArchiveProblem as exc:
                    problems.append(str(exc))
                    self.stderr.write(f"  {exc}")
                    got = None
                else:
                    if got is None and archive.days:
                        self.stdout.write(f"  {archive.name}: not published; using its {len(archive.days)} days")
                        queue[:0] = archive.days
                        progress.update(overall, total=progress.tasks[overall].total + len(archive.days))
                    elif got is None:
                        unpublished.append(archive.name)
                    else:
                        ready.append(got[0])
                        self.stdout.write(f"  {archive.name}: {'downloaded' if got[1] else 'already here'},"
                                          " checksum verified")
                progress.remove_task(current)
                progress.advance(overall)
        return ready

    @staticmethod
    def _marker_line(exchange: str, market: str, symbol: str) -> str:
        return f"{connection.vendor}:{connection.settings_dict['NAME']} {exchange}:{market}:{symbol}\n"

    def _imported_before(self, path: Path, exchange: str, market: str, symbol: str) -> bool:
        marker = path.with_name(path.name + ".imported")
        line = self._marker_line(exchange, market, symbol)
        return marker.exists() and line in marker.read_text().splitlines(keepends=True)

    def _mark_imported(self, path: Path, exchange: str, market: str, symbol: str) -> None:
        with open(path.with_name(path.name + ".imported"), "a") as fh:
            fh.write(self._marker_line(exchange, market, symbol))
