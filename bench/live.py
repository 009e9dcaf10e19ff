"""The live stored path per 1-second batch, as it really runs: the replay's real Binance trades and book
samples through replay_advance (store trades and book samples, 1m/5m/1h bars, the index, finalisation,
calibrated regimes, episodes) and the publish to the channel layer (Redis) after commit, after BENCH_LIVE_HOURS
of history. The drop-risk prediction runs in a task after a bar is final, not in the batch: bench.track_record
times it. One backend per run (DATABASE_URL); prints one JSON object.

Baseline in the same run: the same batches stored with trades_store and book_samples_store only (no bars,
no index), the floor under any bar and index computation.
"""

from __future__ import annotations

import json
import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pressureweb.settings")
django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from apps.markets.services import book_samples_store, trades_store  # noqa: E402
from apps.replay import services as replay  # noqa: E402
from apps.replay.models import ReplayStream  # noqa: E402

HOURS = float(os.environ.get("BENCH_LIVE_HOURS", "5"))
SECONDS = int(os.environ.get("BENCH_LIVE_SECONDS", "120"))


def percentiles(values: list[float]) -> dict:
    return {"p50_ms": round(float(np.percentile(values, 50)) * 1000, 2),
            "p95_ms": round(float(np.percentile(values, 95)) * 1000, 2), "batches": len(values)}


def main() -> None:
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    stream = next(s for s in replay.replay_streams_ensure(history_minutes=int(HOURS * 60) + SECONDS // 60 + 2,
                                                           reset=True) if s.name == "binance-spot-btcusdt")
    history_end = stream.anchor_ms + int(HOURS * 3_600_000)
    replay.replay_advance(stream_id=stream.pk, until_ms=history_end, publish=False)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # what autovacuum does after a bulk load; the planner needs it
            cursor.execute("ANALYZE markets_trade, markets_booksample, pressure_pressurebar")
    history_s = time.perf_counter() - started

    timings, trades = [], 0
    for second in range(1, SECONDS + 1):
        until = history_end + second * 1000
        begin = time.perf_counter()
        replay.replay_advance(stream_id=stream.pk, until_ms=until, publish=True)
        timings.append(time.perf_counter() - begin)
    trades = stream.instrument.trades.filter(time_ms__gt=history_end).count()

    # The baseline: the same seconds of the recording, stored only (into a second instrument).
    rec = replay.stream_recording(ReplayStream.objects.get(pk=stream.pk))
    copy = replay.instrument_ensure(exchange_slug="bench-baseline", market="spot", symbol="BTCUSDT", base="BTC",
                                    quote="USDT")
    baseline = []
    clock = (history_end - stream.anchor_ms)
    for second in range(1, SECONDS + 1):
        rows, books = replay._window(rec, clock + (second - 1) * 1000, clock + second * 1000)
        begin = time.perf_counter()
        with transaction.atomic():
            trades_store(instrument=copy, rows=[r._replace(time_ms=r.time_ms + stream.anchor_ms) for r in rows])
            book_samples_store(instrument=copy, samples=books)
        baseline.append(time.perf_counter() - begin)

    result = {"vendor": connection.vendor, "history_hours": HOURS, "history_s": round(history_s, 1),
              "trades_per_batch_mean": round(trades / SECONDS, 1),
              "live_batch": percentiles(timings), "baseline_store_only": percentiles(baseline)}
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
