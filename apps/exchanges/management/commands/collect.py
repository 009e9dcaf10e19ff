import asyncio
import json
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.exchanges.adapters import ADAPTERS
from apps.exchanges.collector import Collector


class Command(BaseCommand):
    help = ("Stream live trades, order books and liquidations from the exchanges (ccxt.pro) into the database. "
            "Runs until SIGTERM/Ctrl-C; restart it any time: it resumes from the stored cursors.")

    def add_arguments(self, parser):
        parser.add_argument("--exchange", action="append", dest="exchanges", default=None,
                            help="A source (binance-spot) or an exchange (binance); repeatable. Default: all.")
        parser.add_argument("--api-base", default=None, help="Send REST requests to this base URL (tests).")
        parser.add_argument("--ws-base", default=None, help="Open WebSockets on this base URL (tests).")
        parser.add_argument("--batch-ms", type=int, default=250)
        parser.add_argument("--batch-max", type=int, default=5000)
        parser.add_argument("--no-books", action="store_true")
        parser.add_argument("--no-liquidations", action="store_true")
        parser.add_argument("--stale-seconds", type=float, default=30.0)

    def handle(self, *args, exchanges, api_base, ws_base, batch_ms, batch_max, no_books, no_liquidations,
               stale_seconds, **options):
        if not settings.EXCHANGES_ENABLED and api_base is None and ws_base is None:
            # The Procfile role stays up in the offline demo instead of failing (and stopping honcho).
            self.stdout.write("live collection is off (EXCHANGES_ENABLED=0, the default with DEBUG); "
                              "the dashboard runs on REPLAY data. Waiting for Ctrl-C.")
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
            return
        sources = None
        if exchanges:
            sources = [s for s in ADAPTERS if any(s == e or s.split("-")[0] == e for e in exchanges)]
            if not sources:
                raise CommandError(f"no source matches {exchanges}; known: {', '.join(sorted(ADAPTERS))}")
        logging.getLogger("apps.exchanges").setLevel(logging.INFO)
        collector = Collector(sources=sources, api_base=api_base, ws_base=ws_base, batch_ms=batch_ms,
                              batch_max=batch_max, books=not no_books, liquidations=not no_liquidations,
                              stale_s=stale_seconds)
        asyncio.run(collector.run())
        self.stdout.write(json.dumps(collector.summary()))
