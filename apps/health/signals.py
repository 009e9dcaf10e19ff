import logging
import time

from celery.signals import before_task_publish
from django.core.cache import cache

from apps.health.tasks import BEAT_KEY

logger = logging.getLogger(__name__)


@before_task_publish.connect
def beat_published(sender=None, **kwargs):
    # Only beat publishes heartbeats, so this records that beat is alive and scheduling.
    if sender == "apps.health.tasks.heartbeat":
        try:
            cache.set(BEAT_KEY, time.time(), timeout=None)
        except Exception:
            logger.warning("could not record beat heartbeat", exc_info=True)
