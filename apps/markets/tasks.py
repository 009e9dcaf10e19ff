import logging
import time

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from apps.markets.services import raw_data_prune

logger = logging.getLogger(__name__)


# Deleting in batches is idempotent: a dropped connection retries from where it stopped.
@shared_task(ignore_result=True, autoretry_for=(OperationalError, InterfaceError), retry_backoff=5,
             retry_backoff_max=120, retry_jitter=True, max_retries=5)
def raw_data_prune_old() -> dict[str, int]:
    cutoff = int((time.time() - settings.RAW_DATA_RETENTION_DAYS * 86_400) * 1000)
    deleted = raw_data_prune(older_than_ms=cutoff)
    logger.info("pruned raw data older than %s days: %s", settings.RAW_DATA_RETENTION_DAYS, deleted)
    return deleted
