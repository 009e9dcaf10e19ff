from collections import Counter
from itertools import islice
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from apps.markets.archives import FileProblem
from apps.markets.importers import ReadStats, read_trades
from apps.markets.services import CONFLICT, instrument_ensure
from apps.pressure.services import market_batch_ingest

KINDS = {"spot": "spot", "usdm": "perp"}
QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "USD", "BTC", "ETH", "EUR")
LINES_SHOWN = 5


def split_symbol(symbol: str) -> tuple[str, str]:
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise CommandError(f"cannot tell base and quote of {symbol}; known quotes: {', '.join(QUOTES)}")


def _lines(numbers: list[int], total: int) -> str:
    shown = ", ".join(f"{n:,}" for n in numbers[:LINES_SHOWN])
    return f"line {shown}" if total == 1 else f"lines {shown}{', ...' if total > LINES_SHOWN else ''}"


class Command(BaseCommand):
    help = ("Import trades from data.binance.vision trades/aggTrades CSV (zip, gz or plain; with or without header)"
            " or a raw feed recording. Bad rows are rejected with their reasons and line numbers; a damaged file"
            " keeps the rows before the damage and ends the command with an error.")

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--exchange", default="binance")
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--market", choices=sorted(KINDS), default="spot")
        parser.add_argument("--batch-size", type=int, default=50_000)

    def handle(self, *args, paths, exchange, symbol, market, batch_size, **options):
        symbol = symbol.upper()
        base, quote = split_symbol(symbol)
        instrument = instrument_ensure(exchange_slug=exchange, market=market, symbol=symbol, base=base,
                                       quote=quote, kind=KINDS[market])
        totals = Counter()
        problems: list[str] = []
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[rows]:,} rows"),
                      TimeElapsedColumn(), console=None) as progress:
            for path in paths:
                task = progress.add_task(path.name, total=path.stat().st_size if path.is_file() else 1, rows=0)
                stats = ReadStats()
                rejected: dict[str, list] = {}
                counts: Counter = Counter()
                try:
                    self._import(path, instrument, stats, exchange, batch_size, counts, rejected, progress, task)
                except FileProblem as exc:
                    problems.append(str(exc))
                progress.update(task, completed=progress.tasks[task].total,
                                description=f"{path.name} ({stats.layout or 'unread'})")
                totals.update(counts)
                self._report(stats, counts, rejected)
                if stats.damage:
                    problems.append(f"{stats.damage}; the {counts['read']:,} rows before it were imported")
        self.stdout.write(self.style.SUCCESS(
            f"{instrument}: read {totals['read']:,}, inserted {totals['inserted']:,}, "
            f"skipped as duplicates {totals['duplicates']:,}, conflicts {totals['conflicts']:,}, "
            f"rejected {totals['rejected']:,}"
        ))
        if problems:
            raise CommandError(problems[0] if len(problems) == 1 else
                               f"{len(problems)} files could not be read in full: " + " | ".join(problems))

    def _import(self, path, instrument, stats, exchange, batch_size, counts, rejected, progress, task):
        rows = read_trades(path, symbol=instrument.symbol, stats=stats)
        while batch := list(islice(rows, batch_size)):
            line_numbers = [n for n, _ in batch]
            result = market_batch_ingest(instrument=instrument, trades=[r for _, r in batch],
                                         source=f"import:{exchange}")
            counts.update(read=len(batch), inserted=result.trades_inserted, duplicates=result.duplicates,
                          conflicts=result.conflicts, rejected=result.rejected)
            checked = result.stored.checked if result.stored else None
            for reason, count in (checked.rejected.items() if checked else ()):
                lines = rejected.setdefault(reason, [0, []])
                lines[0] += count
                lines[1].extend(line_numbers[p] for p in checked.positions.get(reason, ()))
            progress.update(task, rows=counts["read"], advance=0)

    def _report(self, stats: ReadStats, counts: Counter, rejected: dict[str, list]) -> None:
        for reason, count in stats.unreadable.most_common(10):
            self.stderr.write(f"  unreadable: {count:,} x {reason} ({_lines(stats.unreadable_lines[reason], count)})")
        counts["rejected"] += sum(stats.unreadable.values())
        for reason, (count, lines) in rejected.items():
            what = "conflicts" if reason == CONFLICT else "rejected"
            self.stderr.write(f"  {what}: {count:,} x {reason} ({_lines(lines, count)})")
        if stats.other_symbol:
            self.stdout.write(f"  {stats.other_symbol:,} rows of other symbols ignored")
