from django.core.management.base import BaseCommand, CommandError

from apps.derivatives.services import SAMPLE_TICKERS, derivatives_sample_load


class Command(BaseCommand):
    help = ("Store the shipped recording of Bybit v5 tickers (data/derivatives-sample, ~45 s on 2026-08-09): funding, "
            "open interest and mark/index prices of the Bybit BTCUSDT perpetual at their real times, marked as a "
            "recorded sample. Re-running changes nothing.")

    def handle(self, *args, **options):
        if not SAMPLE_TICKERS.exists():
            raise CommandError(f"{SAMPLE_TICKERS} does not exist")
        try:
            result = derivatives_sample_load()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{result.instrument}: {result.funding} funding, {result.open_interest} open-interest and {result.marks} "
            "mark-price readings"
            f"{'' if result.changed else ' - nothing changed'}")
        self.stdout.write(self.style.SUCCESS("recorded sample loaded (its instrument page labels it)"))
