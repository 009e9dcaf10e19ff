import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from apps.markets.archives import FileProblem
from apps.markets.importers import ReadStats
from apps.markets.klines import KLINE_INTERVAL_MS, Klines, read_klines
from apps.markets.services import instrument_ensure, source_status_record
from apps.pressure.kline_services import KlineStoreResult, kline_bars_store
from apps.pressure.management.commands.import_trades import KINDS, _lines, split_symbol
from apps.pressure.models import INTERVALS
from apps.pressure.services.history import history_index_refresh

INTERVAL_ORDER = list(INTERVALS)

_COUNTS = ("inserted", "updated", "unchanged", "conflicts", "trade_built", "incomplete")
_LABELS = {"trade_built": "kept trade-built", "incomplete": "incomplete hours not stored"}


def _read(path: Path, interval: str) -> tuple[Klines | None, ReadStats, str]:
    stats = ReadStats()
    try:
        return read_klines(path, interval=interval, stats=stats), stats, ""
    except FileProblem as exc:
        return None, stats, str(exc)


class Command(BaseCommand):
    help = ("Import data.binance.vision klines (zip, gz or plain; with or without header; ms or us times) as bars"
            " with source 'klines': 1m, 5m and 1h klines are stored at their interval and rolled up into the"
            " coarser ones, 15m klines into 1h. Buckets that have trade-built bars keep them. Bad rows are"
            " rejected with their reasons and line numbers; a damaged file keeps the rows before the damage and"
            " ends the command with an error. Re-importing a file changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--exchange", default="binance")
        parser.add_argument("--market", choices=sorted(KINDS), default="spot")
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--interval", choices=list(KLINE_INTERVAL_MS), required=True)
        parser.add_argument("--no-index", action="store_true",
                            help="store the bars only; the index, regimes and episodes follow with evaluate_spi "
                                 "--reindex")

    def handle(self, *args, paths, exchange, market, symbol, interval, no_index, **options):
        symbol = symbol.upper()
        base, quote = split_symbol(symbol)
        instrument = instrument_ensure(exchange_slug=exchange, market=market, symbol=symbol, base=base,
                                       quote=quote, kind=KINDS[market])
        totals: Counter = Counter()
        per_interval: dict[str, Counter] = {}
        problems: list[str] = []
        started = time.perf_counter()
        span = (2**62, -1)
        # The next file is read (pure numpy, no database) while the current one is written.
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[klines]:,} klines"), TimeElapsedColumn()) as progress, \
                ThreadPoolExecutor(max_workers=1) as reader:
            task = progress.add_task(f"{symbol} {interval} klines", total=len(paths), klines=0)
            ahead = reader.submit(_read, paths[0], interval)
            for i, path in enumerate(paths):
                progress.update(task, description=path.name)
                klines, stats, problem = ahead.result()
                if i + 1 < len(paths):
                    ahead = reader.submit(_read, paths[i + 1], interval)
                result = KlineStoreResult()
                if problem:
                    problems.append(problem)
                else:
                    result = kline_bars_store(instrument=instrument, klines=klines, interval=interval)
                    if len(klines.open_ms):
                        span = (min(span[0], int(klines.open_ms.min())), max(span[1], int(klines.open_ms.max())))
                self._report(path, stats, result)
                rejected = sum(stats.unreadable.values())
                totals.update(read=stats.read, rejected=rejected, duplicates=result.duplicates)
                for name, counts in result.intervals.items():
                    per_interval.setdefault(name, Counter()).update(
                        {key: getattr(counts, key) for key in _COUNTS})
                conflicts = sum(c.conflicts for c in result.intervals.values())
                source_status_record(name=f"import-klines:{exchange}", rejected=rejected, conflicts=conflicts)
                if stats.damage:
                    problems.append(f"{stats.damage}; the {stats.read:,} klines before it were imported")
                progress.update(task, advance=1, klines=totals["read"])
        elapsed = time.perf_counter() - started
        self.stdout.write(self.style.SUCCESS(
            f"{instrument} {interval} klines: read {totals['read']:,}, rejected {totals['rejected']:,},"
            f" exact copies skipped {totals['duplicates']:,} ({totals['read'] / elapsed:,.0f} klines/s)"
        ))
        for name, counts in per_interval.items():
            shown = ", ".join(f"{_LABELS.get(key, key)} {counts[key]:,}" for key in _COUNTS
                              if counts[key] or key in ("inserted", "unchanged"))
            self.stdout.write(f"  {name} bars: {shown}")
        if not no_index and span[1] >= 0:
            self._index(instrument, sorted(per_interval, key=INTERVAL_ORDER.index), span)
        if problems:
            raise CommandError(problems[0] if len(problems) == 1 else
                               f"{len(problems)} files could not be read in full: " + " | ".join(problems))

    def _index(self, instrument, intervals: list[str], span: tuple[int, int]) -> None:
        """The index, calibrated regimes and episodes of the imported bars (walk-forward, as live)."""
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} bars"),
                      TimeElapsedColumn()) as progress:
            for name in intervals:
                task = progress.add_task(f"index of the {name} bars", total=None)
                done = history_index_refresh(
                    instrument=instrument, interval=name, start_ms=span[0], end_ms=span[1] + KLINE_INTERVAL_MS["1h"],
                    progress=lambda n, t=task: progress.update(t, completed=n))
                progress.update(task, completed=done, total=max(done, 1))
        self.stdout.write("  the index is computed; `manage.py evaluate_spi` fits the drop-risk forecast and the "
                          "track record")

    def _report(self, path: Path, stats: ReadStats, result: KlineStoreResult) -> None:
        for reason, count in stats.unreadable.most_common():
            self.stderr.write(f"  {path.name}: rejected: {count:,} x {reason}"
                              f" ({_lines(stats.unreadable_lines[reason], count)})")
        conflicts = sum(c.conflicts for c in result.intervals.values())
        if conflicts:
            self.stderr.write(f"  {path.name}: conflicts: {conflicts:,} x same bucket, other values (the first"
                              f" stored copy is kept) ({_lines(result.conflict_lines, conflicts)})")
        trade_built = sum(c.trade_built for c in result.intervals.values())
        if result.trade_built_lines:
            self.stdout.write(f"  {path.name}: {trade_built:,} buckets already have trade-built bars, kept"
                              f" ({_lines(result.trade_built_lines, len(result.trade_built_lines))})")
        if result.incomplete_lines:
            count = sum(c.incomplete for c in result.intervals.values())
            self.stdout.write(f"  {path.name}: {count:,} hours with fewer than four 15m klines, not stored"
                              f" ({_lines(result.incomplete_lines, count)})")
