import time

from celery import shared_task
from django.core.cache import cache

WORKER_KEY = "health:worker"
BEAT_KEY = "health:beat"


@shared_task(ignore_result=True)
def heartbeat() -> None:
    """Sent by beat only; running it proves a worker consumes the queue."""
    cache.set(WORKER_KEY, time.time(), timeout=None)
