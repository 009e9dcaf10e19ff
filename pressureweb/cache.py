"""The default cache: Django's Redis cache, whose throttle counters fail open while Redis is unreachable.

allauth keeps its rate-limit counters (ACCOUNT_RATE_LIMITS: logins, sign-ups, password resets, test emails) in the
default cache. With Redis down, every login POST answered an HTML 500. For those keys only, an unreachable Redis
now reads as "no attempts yet", writes nowhere, and grants allauth's lock, with a warning in the log: the throttles
are off until Redis is back, and logins keep working meanwhile. Every other key still raises, so callers that
handle an outage themselves (page payloads, health checks) see it as before.
"""

from __future__ import annotations

import logging

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

THROTTLE_PREFIX = "allauth:rl:"  # allauth.core.internal.ratelimit.get_cache_key, and its ":lock" keys
UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


def _is_throttle(key) -> bool:
    return isinstance(key, str) and key.startswith(THROTTLE_PREFIX)


class ThrottleFailOpenRedisCache(RedisCache):
    def get(self, key, default=None, version=None):
        try:
            return super().get(key, default, version)
        except UNREACHABLE as exc:
            if not _is_throttle(key):
                raise
            logger.warning("Redis unreachable (%s): throttle %s not applied, request allowed", exc, key)
            return default

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().add(key, value, timeout, version)
        except UNREACHABLE:
            if not _is_throttle(key):
                raise
            return True  # allauth's lock: granted, or it would wait and then refuse the request

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            super().set(key, value, timeout, version)
        except UNREACHABLE:
            if not _is_throttle(key):
                raise

    def delete(self, key, version=None):
        try:
            return super().delete(key, version)
        except UNREACHABLE:
            if not _is_throttle(key):
                raise
            return False
