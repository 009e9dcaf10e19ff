from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from apps.replay import services


@shared_task(bind=True, ignore_result=True, autoretry_for=(OperationalError, InterfaceError), retry_backoff=1,
             retry_backoff_max=30, retry_jitter=True, max_retries=5)
def replay_tick(self) -> int:
    if not settings.REPLAY_ENABLED:
        return 0
    try:
        return services.replay_tick()
    except (OperationalError, InterfaceError):
        # The database dropped us mid-batch: that batch rolled back whole. Reconnect on the retry.
        connection.close()
        raise
