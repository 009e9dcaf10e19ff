from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from apps.replay import services
from pressureweb import embedded_redis


class Command(BaseCommand):
    help = "Register the bundled Binance replay instruments and ingest recent history (REPLAY data)."

    def add_arguments(self, parser):
        parser.add_argument("--history", type=int, default=settings.REPLAY_HISTORY_MINUTES,
                            help="Minutes of history to backfill for new streams (default %(default)s).")
        parser.add_argument("--reset", action="store_true", help="Re-anchor existing streams to now - history.")

    def handle(self, *args, history, reset, **options):
        # Bar writes invalidate cached ranges in Redis.
        try:
            with embedded_redis.available():
                self._load(history=history, reset=reset)
        except embedded_redis.PortTaken as exc:
            raise CommandError(str(exc)) from None

    def _load(self, *, history, reset):
        streams = services.replay_streams_ensure(history_minutes=history, reset=reset)
        until = services.now_ms()
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeRemainingColumn()) as progress:
            for stream in streams:
                task = progress.add_task(f"replay {stream.name}", total=1)
                inserted = services.replay_advance(
                    stream_id=stream.pk, until_ms=until, publish=False,
                    progress=lambda done, total, t=task: progress.update(t, completed=done, total=max(total, 1)),
                )
                progress.update(task, completed=1, total=1,
                                description=f"replay {stream.name}: {inserted:,} trades")
        self.stdout.write(self.style.SUCCESS(f"{len(streams)} replay streams ready (REPLAY data, shifted to now)."))
