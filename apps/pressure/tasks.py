from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.pressure import selectors, services


# Finalising is idempotent (a bar is made final once): a dropped connection just retries.
@shared_task(ignore_result=True, autoretry_for=(OperationalError, InterfaceError), retry_backoff=1,
             retry_backoff_max=10, max_retries=3)
def bars_finalize_due() -> int:
    """Make due bars final where no batch arrived to do it (a quiet market, a stopped feed)."""
    count = 0
    for instrument in selectors.instruments_with_due_bars():
        count += sum(len(v) for v in services.bars_finalize_due(instrument=instrument).values())
    return count
