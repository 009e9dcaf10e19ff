import time

from celery.signals import before_task_publish
from django.core.cache import cache

from apps.health.tasks import BEAT_KEY


@before_task_publish.connect
def beat_published(sender=None, **kwargs):
    # Only beat publishes heartbeats, so this records that beat is alive and scheduling.
    if sender == "apps.health.tasks.heartbeat":
        try:
            cache.set(BEAT_KEY, time.time(), timeout=None)
        except Exception:  # noqa: BLE001 - the health page will show Redis as down instead
            pass
