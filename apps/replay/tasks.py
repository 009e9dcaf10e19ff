from celery import shared_task
from django.conf import settings

from apps.replay import services


@shared_task(ignore_result=True)
def replay_tick() -> int:
    if not settings.REPLAY_ENABLED:
        return 0
    return services.replay_tick()
