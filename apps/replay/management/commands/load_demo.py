from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from pressureweb import embedded_redis

# What `make run` loads before it starts the processes, in this order; each step is a command of its own that can
# be run alone and again (all are idempotent).
STEPS = (
    ("migrate", {"interactive": False, "verbosity": 0}),
    ("load_glossary", {}),  # a database migrated before the term files last changed gets their text
    ("collectstatic", {"interactive": False, "verbosity": 0}),
    ("import_wallet_labels", {}),
    ("load_flow_samples", {}),
    ("load_derivatives_sample", {}),
    ("load_replay", {}),
)


class Command(BaseCommand):
    help = ("Everything `make run` loads, in one process: migrations, static files, wallet labels, the recorded "
            "on-chain and derivatives samples and the replay (REPLAY data).")

    def handle(self, *args, **options):
        # One process and one Redis for all steps: each as its own command would start Django (and a Redis) again.
        try:
            with embedded_redis.available():
                for name, kwargs in STEPS:
                    self.stdout.write(f"== {name}")
                    call_command(name, stdout=self.stdout, stderr=self.stderr, **kwargs)
        except embedded_redis.PortTaken as exc:
            raise CommandError(str(exc)) from None
