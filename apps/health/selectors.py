"""What is up and what is not: read by /healthz and the status page."""

from __future__ import annotations

import time

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from apps.health.tasks import BEAT_KEY, WORKER_KEY
from apps.markets.models import SourceStatus

STALE_AFTER_S = 45


def _heartbeat(key: str) -> dict:
    try:
        beat = cache.get(key)
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"redis: {exc}"}
    if beat is None:
        return {"ok": False, "error": "no heartbeat yet", "age_s": None}
    age = time.time() - beat
    return {"ok": age < STALE_AFTER_S, "age_s": round(age, 1)}


def health_report() -> dict:
    report: dict = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        report["database"] = {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # noqa: BLE001
        report["database"] = {"ok": False, "error": str(exc)}
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()
        report["redis"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001
        report["redis"] = {"ok": False, "error": str(exc)}
    report["celery_worker"] = _heartbeat(WORKER_KEY)
    report["celery_beat"] = _heartbeat(BEAT_KEY)
    sources = {}
    if report["database"]["ok"]:
        for s in SourceStatus.objects.all():
            sources[s.name] = {
                "last_ingest_at": s.last_ingest_at.isoformat() if s.last_ingest_at else None,
                "trades_inserted": s.trades_inserted, "duplicates": s.duplicates, "rejected": s.rejected,
                "conflicts": s.conflicts,
                "book_samples": s.book_samples, "sequence_gaps": s.sequence_gaps, "errors": s.errors,
            }
    report["sources"] = sources
    report["ok"] = all(report[k]["ok"] for k in ("database", "redis", "celery_worker", "celery_beat"))
    return report
