from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from apps.pressure.models import INTERVALS
from apps.pressure.selectors import instrument_lookup, instruments_with_final_bars
from apps.pressure.services.history import history_evaluate, history_index_refresh, history_span

SHOWN = ("spi", "drop_risk", "regime_high", "baseline_taker_sell_ratio", "baseline_volatility", "baseline_return")


class Command(BaseCommand):
    help = ("Walk-forward track record: fit the drop-risk forecast month by month over each instrument's final bars "
            "(each fit from the bars before it), store its predictions, and evaluate the index, its regimes, the "
            "forecast and the baselines for every horizon. --reindex first recomputes the index of the history.")

    def add_arguments(self, parser):
        parser.add_argument("--exchange")
        parser.add_argument("--market")
        parser.add_argument("--symbol")
        parser.add_argument("--interval", choices=list(INTERVALS))
        parser.add_argument("--reindex", action="store_true", help="recompute the index and episodes first")

    def handle(self, *args, exchange, market, symbol, interval, reindex, **options):
        pairs = instruments_with_final_bars()
        if exchange or market or symbol:
            if not (exchange and market and symbol):
                raise CommandError("give --exchange, --market and --symbol together")
            instrument = instrument_lookup(exchange=exchange, market=market, symbol=symbol)
            if instrument is None:
                raise CommandError(f"unknown instrument {exchange}/{market}/{symbol}")
            pairs = [(i, iv) for i, iv in pairs if i.pk == instrument.pk]
        if interval:
            pairs = [(i, iv) for i, iv in pairs if iv == interval]
        if not pairs:
            raise CommandError("no final bars to evaluate: import history first (import_klines, import_trades)")
        console = Console()
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                      TimeElapsedColumn(), console=console) as progress:
            overall = progress.add_task("instruments", total=len(pairs))
            results = []
            for instrument, iv in pairs:
                if reindex:
                    first, last = history_span(instrument=instrument, interval=iv)
                    task = progress.add_task(f"{instrument} {iv}: index", total=1)
                    history_index_refresh(instrument=instrument, interval=iv, start_ms=first, end_ms=last + 1,
                                          progress=lambda done, t=task: progress.update(t, completed=done,
                                                                                        total=max(done, 1)))
                progress.update(overall, description=f"{instrument} {iv}: forecast and track record")
                results.append((instrument, iv, history_evaluate(instrument=instrument, interval=iv)))
                progress.advance(overall)
        for instrument, iv, found in results:
            self._table(console, instrument, iv, found)

    def _table(self, console, instrument, interval, found):
        for horizon, record in found["records"].items():
            r = record.result
            table = Table(title=f"{instrument} {interval}: drop of {record.drop_pct:g}% within {horizon} min: "
                                f"{r['bars']:,} bars, {r['events']:,} events, base rate "
                                f"{(r['base_rate'] or 0) * 100:.2f}%")
            for column in ("signal", "AUC", "Brier skill", "precision", "recall", "lead (min)", "false alarms/day"):
                table.add_column(column)
            for name in SHOWN:
                s = r["signals"].get(name) or {}
                table.add_row(name, *(_fmt(s.get(k)) for k in ("auc", "brier_skill", "precision", "recall",
                                                              "lead_time_minutes_median", "false_alarms_per_day")))
            console.print(table)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
