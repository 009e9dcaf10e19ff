from itertools import islice
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from apps.markets.importers import ReadStats, read_trades
from apps.markets.services import instrument_ensure
from apps.pressure.services import market_batch_ingest

KINDS = {"spot": "spot", "usdm": "perp"}
QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "USD", "BTC", "ETH", "EUR")


def split_symbol(symbol: str) -> tuple[str, str]:
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise CommandError(f"cannot tell base and quote of {symbol}; known quotes: {', '.join(QUOTES)}")


class Command(BaseCommand):
    help = "Import trades from data.binance.vision trades/aggTrades CSV (with or without header) or a raw feed."

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
        totals = {"read": 0, "inserted": 0, "duplicates": 0, "rejected": 0}
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[rows]:,} rows"),
                      TimeElapsedColumn()) as progress:
            for path in paths:
                if not path.exists():
                    raise CommandError(f"{path} does not exist")
                stats = ReadStats()
                task = progress.add_task(path.name, total=path.stat().st_size, rows=0)
                rows = read_trades(path, symbol=symbol, stats=stats)
                while batch := list(islice(rows, batch_size)):
                    result = market_batch_ingest(instrument=instrument, trades=batch, source=f"import:{exchange}")
                    totals["read"] += len(batch)
                    totals["inserted"] += result.trades_inserted
                    totals["duplicates"] += result.duplicates
                    totals["rejected"] += result.rejected
                    progress.update(task, rows=totals["read"], advance=0)
                progress.update(task, completed=path.stat().st_size, description=f"{path.name} ({stats.layout})")
                for reason, count in stats.unreadable.most_common(10):
                    self.stderr.write(f"  unreadable: {count} x {reason}")
                if stats.other_symbol:
                    self.stdout.write(f"  {stats.other_symbol:,} rows of other symbols ignored")
                totals["rejected"] += sum(stats.unreadable.values())
        self.stdout.write(self.style.SUCCESS(
            f"{instrument}: read {totals['read']:,}, inserted {totals['inserted']:,}, "
            f"skipped as duplicates {totals['duplicates']:,}, rejected {totals['rejected']:,}"
        ))
