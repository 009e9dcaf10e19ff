from django.core.management.base import BaseCommand, CommandError

from apps.exchanges.adapters import ADAPTERS
from apps.exchanges.services import feed_add


class Command(BaseCommand):
    help = ("Add an instrument to collect from a source, e.g. `collect_instrument binance-usdm SOLUSDT`. "
            "The collector and the pollers pick it up within 5 minutes (or at once when `collect` restarts).")

    def add_arguments(self, parser):
        parser.add_argument("source", help=f"One of: {', '.join(sorted(ADAPTERS))}.")
        parser.add_argument("symbol", help="The exchange's own symbol, e.g. SOLUSDT, SOL-USDT-SWAP, SOL-USD.")
        parser.add_argument("--base", default=None, help="Base currency when the symbol does not show it.")
        parser.add_argument("--quote", default=None, help="Quote currency when the symbol does not show it.")

    def handle(self, *args, source, symbol, base, quote, **options):
        try:
            feed = feed_add(slug=source, symbol=symbol, base=base, quote=quote)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        instrument = feed.instrument
        self.stdout.write(self.style.SUCCESS(
            f"{instrument.symbol} ({instrument.base}/{instrument.quote} {instrument.kind}) will be collected "
            f"from {source}; the Sources page lists it."))
