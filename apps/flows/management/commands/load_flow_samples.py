from django.core.management.base import BaseCommand, CommandError

from apps.flows.models import ExchangeWallet
from apps.flows.services.samples import SAMPLES_DIR, flow_samples_load
from pressureweb import embedded_redis


class Command(BaseCommand):
    help = ("Store the exchange flows of the shipped recorded blocks (data/onchain-blocks: 2 Ethereum blocks and "
            "Bitcoin block 702861) through the real parsers and accounting, marked as a recorded sample. Needs the "
            "wallet labels (import_wallet_labels); re-running changes nothing.")

    def handle(self, *args, **options):
        if not ExchangeWallet.objects.filter(active=True).exists():
            raise CommandError("no exchange wallets are labelled: run manage.py import_wallet_labels first")
        if not SAMPLES_DIR.is_dir():
            raise CommandError(f"{SAMPLES_DIR} does not exist")
        # Stored flows move the flows page's cache version in Redis.
        try:
            with embedded_redis.available():
                results = flow_samples_load()
        except embedded_redis.PortTaken as exc:
            raise CommandError(str(exc)) from None
        for r in results:
            s = r.stored
            extra = f", {r.left_out:,} left out (may spend a labelled address)" if r.left_out else ""
            self.stdout.write(
                f"{r.key}: {r.transactions:,} transactions{extra}; {r.flow_rows:,} exchange flow rows "
                f"(inserted {s.inserted:,}, updated {s.updated:,}, unchanged {s.unchanged:,}, deleted {s.deleted:,})"
                f"{'' if r.sample_changed or s.inserted or s.updated or s.deleted else ' - nothing changed'}")
        self.stdout.write(self.style.SUCCESS("recorded samples loaded (shown on /flows/ as RECORDED SAMPLE)"))
