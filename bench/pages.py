"""Page load under concurrency: 30 days of 1m bars for 50 instruments in PostgreSQL.

Seeds the bars with COPY (once; kept in the pressureweb_pages database), starts Daphne, then
hits the overview, an instrument page (24h and 7d ranges), the flows page, the glossary index
and a term page with concurrent clients, reporting p50/p95 time to first byte and chart payload
size. Baseline in the same run: a static file served by the same Daphne. Prints one JSON line.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_URL = ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgres://") + "/pressureweb_pages"
INSTRUMENTS, DAYS = 50, 30
CLIENTS, SECONDS = 8, 10


def seed() -> None:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'pressureweb_pages'").fetchone()
        if not exists:
            conn.execute("CREATE DATABASE pressureweb_pages")
    os.environ["DATABASE_URL"] = DB_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pressureweb.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from apps.markets.services import instrument_ensure
    from apps.pressure.models import PressureBar

    call_command("migrate", verbosity=0)
    if PressureBar.objects.count() >= INSTRUMENTS * DAYS * 1440:
        return
    PressureBar.objects.all().delete()
    end = datetime.now(tz=UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=DAYS)
    minutes = DAYS * 1440
    for n in range(INSTRUMENTS):
        inst = instrument_ensure(exchange_slug="bench", market="spot", symbol=f"C{n:02d}USDT", base=f"C{n:02d}",
                                 quote="USDT")
        buf = io.StringIO()
        price = 100.0 + n
        for m in range(minutes):
            ts = start + timedelta(minutes=m)
            price *= 1 + ((m * 7919 + n) % 200 - 100) / 1e5
            buy, sell = 1 + (m % 13) / 10, 1 + (m % 17) / 10
            buf.write(f"{inst.pk}\t1m\t{ts.isoformat()}\t{price:.2f}\t{price * 1.001:.2f}\t{price * 0.999:.2f}\t"
                      f"{price:.2f}\t{price:.2f}\t{m % 50 + 1}\t{buy}\t{sell}\t{buy * price:.4f}\t{sell * price:.4f}\t"
                      f"{buy - sell}\t{sell / (buy + sell)}\t0.5\t-0.1\t-0.05\t0\t0.02\t60\t10\t12\t{ts.isoformat()}\t"
                      f"{{}}\t[]\t\n")
        buf.seek(0)
        cols = ("instrument_id, interval, bucket_start, open, high, low, close, vwap, trades, taker_buy_base, "
                "taker_sell_base, taker_buy_quote, taker_sell_quote, delta_base, taker_sell_ratio, spread_bps, "
                "imbalance_0_1pct, imbalance_0_5pct, imbalance_1pct, imbalance_2pct, book_samples, buy_trades, "
                "sell_trades, updated_at, spi_components, spi_missing, regime")
        with connection.cursor() as cur, cur.cursor.copy(f"COPY pressure_pressurebar ({cols}) FROM STDIN") as cp:
            cp.write(buf.getvalue())
        print(f"seeded {inst.symbol}", file=sys.stderr, flush=True)


def ttfb(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as resp:
        resp.read(1)
        first = time.perf_counter() - start
        size = 1 + len(resp.read())
    return first, size


def load(url: str) -> dict:
    samples, sizes, errors, stop = [], [], [], time.monotonic() + SECONDS

    def worker():
        while time.monotonic() < stop:
            try:
                t, size = ttfb(url)
            except urllib.error.HTTPError as exc:
                errors.append(exc.code)
                continue
            samples.append(t)
            sizes.append(size)

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    samples.sort()
    if not samples:
        return {"requests": 0, "errors": len(errors), "status": sorted(set(errors))}
    return {"requests": len(samples), "errors": len(errors), "p50_ms": round(samples[len(samples) // 2] * 1000, 1),
            "p95_ms": round(samples[int(len(samples) * 0.95)] * 1000, 1), "bytes": sizes[-1]}


def main() -> None:
    seed()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": DB_URL, "DEBUG": "1", "CONN_MAX_AGE": "60", "PYTHONPATH": str(ROOT)}
    web = subprocess.Popen([str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                            "pressureweb.asgi:application"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                ttfb(base + "/static/css/site.css")
                break
            except OSError:
                time.sleep(0.2)
        pages = {
            "baseline: static file": "/static/css/site.css",
            "overview (50 instruments)": "/",
            "instrument 24h (1m bars)": "/markets/bench/spot/C07USDT/?range=24h",
            "instrument 7d (auto 5m/1h)": "/markets/bench/spot/C07USDT/?range=7d",
            "instrument 30d custom": "/markets/bench/spot/C07USDT/?range=custom&start="
                                     + (datetime.now(tz=UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M") + "Z",
            "flows": "/flows/",
            "glossary index": "/glossary/",
            "glossary term": "/glossary/taker-sell-ratio/",
        }
        results = {}
        for name, path in pages.items():
            ttfb(base + path)  # warm
            results[name] = load(base + path)
        print(json.dumps({"clients": CLIENTS, "seconds_per_page": SECONDS, "instruments": INSTRUMENTS,
                          "days_of_1m_bars": DAYS, "pages": results}))
    finally:
        web.terminate()
        web.wait(10)


if __name__ == "__main__":
    main()
