"""The API's rate limit: settings.API_RATE per client IP, counted in the shared cache (Redis).

django-ratelimit does the counting (an atomic increment per fixed window, so every web process shares the
limit). Redis is an optimisation here, not a dependency: when it is unreachable the request is allowed and
a warning is logged, at most once a minute per process.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage
from ninja.throttling import BaseThrottle
from redis.exceptions import RedisError

from pressureweb.client_ip import client_ip

logger = logging.getLogger(__name__)

WARNING_INTERVAL_SECONDS = 60.0


def _client_key(group: str, request: HttpRequest) -> str:
    return client_ip(request)


class ClientRateThrottle(BaseThrottle):
    group = "api"  # one bucket per client for the whole API

    def __init__(self, *, clock=time.monotonic) -> None:
        self.clock = clock
        self._last_warning: float | None = None
        self._local = threading.local()  # one instance serves every request thread

    def allow_request(self, request: HttpRequest) -> bool:
        self._local.wait = None
        try:
            usage = get_usage(request, group=self.group, key=_client_key, rate=settings.API_RATE, increment=True)
        except (RedisError, OSError):
            self._warn_unreachable()
            return True
        # None: limiting switched off. A limit of 0: the counter expired between django-ratelimit's add and
        # increment, so no count was read; allow rather than refuse a client for our race.
        if usage is None or not usage["should_limit"] or usage["limit"] == 0:
            return True
        self._local.wait = max(usage["time_left"], 1)
        return False

    def wait(self) -> float | None:
        return getattr(self._local, "wait", None)

    def _warn_unreachable(self) -> None:
        now = self.clock()
        if self._last_warning is None or now - self._last_warning >= WARNING_INTERVAL_SECONDS:
            self._last_warning = now
            logger.warning("API rate limit not applied: the cache (Redis) is unreachable; allowing requests "
                           "(this warning repeats at most once a minute)", exc_info=True)
