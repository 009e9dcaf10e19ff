"""Payloads cached per version of their data, in Redis for every process and in this process's memory.

- a version counter per data set in Redis (``version_get`` / ``version_bump``), bumped by the writes (services)
  after every change the payload shows;
- payloads cached under their key with the version they were built for (``cached_while_rebuilt``), so a read
  of an unchanged payload costs one small counter instead of a megabyte.

Selectors cache rows or JSON text here; the pages' ready script elements (pressureweb/page_payloads.py) too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

CACHE_SECONDS = 300
STALE_SECONDS = 10
REBUILD_WAIT_SECONDS = 2.0


# --- versions ---------------------------------------------------------------------------------------------


def version_first() -> int:
    """The value a missing counter starts from: microseconds since the epoch.

    Redis may lose the counters (a restart without persistence, a flush) while web processes still
    hold payloads in memory under the versions they had. Counting on from the clock, a restarted
    counter never repeats one of those versions (it would take over a million bumps a second).
    """
    return time.time_ns() // 1000


def version_get(key: str, *, what: str) -> int | None:
    """The counter under key, started if missing; None when Redis is unreachable (read ``what`` from the database)."""
    try:
        return cache.get_or_set(key, version_first, timeout=None)
    except Exception:  # the cache is an optimisation, never a dependency
        logger.warning("cache unreachable; reading %s from the database", what, exc_info=True)
        return None


def versions_get(keys: list[str], *, what: str) -> dict[str, int] | None:
    """version_get of many counters in one round trip (two when some are missing)."""
    try:
        found = cache.get_many(keys)
        missing = [k for k in keys if k not in found]
        if missing:
            first = version_first()
            for key in missing:
                cache.add(key, first, timeout=None)  # add, not set: a bump racing with this read must win
            found.update(cache.get_many(missing))
    except Exception:
        logger.warning("cache unreachable; reading %s from the database", what, exc_info=True)
        return None
    return found


def version_bump(key: str) -> None:
    """Move the counter on after a write: every payload cached under the old value is rebuilt on its next read."""
    try:
        try:
            cache.incr(key)
        except ValueError:  # missing: any fresh start is newer than the versions payloads were built for
            cache.set(key, version_first(), timeout=None)
    except Exception:
        # Cached payloads expire on their own within CACHE_SECONDS; the write itself has succeeded.
        logger.warning("could not move %s on", key, exc_info=True)


# --- payloads cached per version --------------------------------------------------------------------------


class _ProcessPayloads:
    """The newest payloads this process has read or built, by key with their version, within a byte budget.

    Entries expire CACHE_SECONDS after they were built, like their Redis copies, so a write that moved no version
    (raw SQL, a data migration) shows within the same time as without this layer. Shared by the
    request threads of one web process, so values must never be changed by readers (ScriptElement
    is frozen; the dicts pages read are only read).
    """

    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple[int, int, float, object]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str, version: int):
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != version or time.time() - item[2] > CACHE_SECONDS:
                return None
            self._items.move_to_end(key)
            return item[3]

    def put(self, key: str, version: int, value, *, built_at: float) -> None:
        budget = settings.PAGE_PAYLOADS_PROCESS_MB * 1024 * 1024
        size = _payload_size(value)
        if size > budget:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (version, size, built_at, value)
            self._bytes += size
            while self._bytes > budget:
                _, (_, dropped, _, _) = self._items.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


process_payloads = _ProcessPayloads()


def _payload_size(value) -> int:
    element = getattr(value, "element", None)
    if isinstance(element, bytes):  # a page's ready script element (page_payloads.ScriptElement)
        return len(element)
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, dict):
        return 64 + sum(_payload_size(v) for v in value.values())
    if isinstance(value, list | tuple):
        return 64 + sum(_payload_size(v) for v in value)
    return 64


def cached_while_rebuilt(key: str | None, version: int | None, build, *, stale_seconds: float | None = None):
    """build() cached under key for one version of its data.

    Served from this process's memory while the version is unchanged, else from Redis. When a
    write has moved the version on, one request rebuilds while concurrent ones get the previous
    payload, if it is under stale_seconds (default STALE_SECONDS) old: a live instrument is
    rewritten every second, and a rebuild by every request that arrives meanwhile is what made
    page loads slow. Instrument pages fetch the bars since their last one as soon as their socket
    opens, so a payload a few seconds old leaves no gap; pages without that catch-up pass 0, and
    their concurrent requests wait (up to REBUILD_WAIT_SECONDS) for the one rebuild instead.
    key None (the cache is unreachable): build() without any cache.
    """
    stale_seconds = STALE_SECONDS if stale_seconds is None else stale_seconds
    if key is None or version is None:
        return build()
    value = process_payloads.get(key, version)
    if value is not None:
        return value
    try:
        entry = cache.get(key)
    except Exception:
        logger.warning("cache unreachable; reading %s from the database", key, exc_info=True)
        return build()
    now = time.time()
    if entry is not None and entry[0] == version:
        process_payloads.put(key, version, entry[2], built_at=entry[1])
        return entry[2]
    try:
        rebuilding = not cache.add(f"{key}:rebuild", 1, timeout=5)
        if rebuilding and entry is not None and now - entry[1] < stale_seconds:
            return entry[2]  # another request is rebuilding this one
        if rebuilding:
            # No previous payload allowed: wait for the one being built rather than build it once more.
            while time.time() < now + REBUILD_WAIT_SECONDS:
                time.sleep(0.02)
                entry = cache.get(key)
                if entry is not None and entry[0] >= version:
                    process_payloads.put(key, entry[0], entry[2], built_at=entry[1])
                    return entry[2]
    except Exception:
        logger.warning("cache unreachable; reading %s from the database", key, exc_info=True)
    value = build()
    process_payloads.put(key, version, value, built_at=now)
    try:
        cache.set(key, (version, now, value), timeout=CACHE_SECONDS)
        cache.delete(f"{key}:rebuild")
    except Exception:
        logger.warning("could not cache %s", key, exc_info=True)
    return value
