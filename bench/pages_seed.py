"""The data bench/pages.py serves: 30 days of 1m bars (with their 5m and 1h roll-ups) for 50 instruments,
and 30 days of hourly exchange flows, seeded into PostgreSQL once (COPY; kept in the pressureweb_pages database).

Bars: final (but the roll-ups still forming at seed time), with their index, calibrated regimes and episodes
computed by the real engine (history_index_refresh, as `import_klines` does), so every page carries what a
market with history carries. Redone when the newest 1m bar is more than BARS_STALE old: the 24h range would
otherwise show an empty chart and measure nothing.

Flows (the /flows/ page): the shipped wallet labels (the real import), ~925k synthetic final FlowTx
rows of the most labelled exchanges (BTC on chain btc: its 5 labelled exchanges, ~150 transactions
an hour; USDT and USDC on chain eth: 13 exchanges, ~800 and ~300 an hour), a few pending BTC inflows
and hourly BTC reserve snapshots, then the hourly FlowBar rows (per exchange and ``all``) computed
from them by the real services.flow_bars_refresh (a random walk stands in for the BTC hourly close).
Redone when missing or more than FLOW_STALE old.
"""

from __future__ import annotations

import io
import os
import sys
import time
from datetime import UTC, datetime, timedelta

ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_URL = ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgres://") + "/pressureweb_pages"
INSTRUMENTS, DAYS = 50, 30
# Exchange flows (/flows/): per asset its chain, final transactions per hour over all exchanges, median amount
# (coins) and lognormal sigma of a transaction, largest transaction (coins). Exchanges: the FLOW_EXCHANGES most
# labelled of the chain (the shipped labels name 5 BTC exchanges and 130 ETH ones), weighted by labelled wallets.
FLOW_ASSETS = {"BTC": ("btc", 150, 0.05, 2.0, 2_000), "USDT": ("eth", 800, 2_000.0, 2.2, 10**8),
               "USDC": ("eth", 300, 2_000.0, 2.2, 10**8)}
FLOW_EXCHANGES = 13
FLOW_STALE = timedelta(days=1)  # an older flows seed is redone: the 7d range would lose its newest bars
# An older seed is redone: the overview's sparklines show the last hour and the instrument pages' default range
# ends now, so bars that stop earlier would make lighter pages than a live install serves.
BARS_STALE = timedelta(minutes=5)
BTC_START_PRICE = 65_000.0
BAR_COLUMNS = ["instrument_id", "interval", "bucket_start", "open", "high", "low", "close", "vwap", "trades",
               "taker_buy_base", "taker_sell_base", "taker_buy_quote", "taker_sell_quote", "delta_base",
               "taker_sell_ratio", "spread_bps", "imbalance_0_1pct", "imbalance_0_5pct", "imbalance_1pct",
               "imbalance_2pct", "book_samples", "buy_trades", "sell_trades", "updated_at", "spi_components",
               "spi_missing", "regime", "source", "final"]
FLOW_TX_COLUMNS = ("chain, asset, txid, exchange, counterparty, exchange_to_exchange, inflow, outflow, internal, "
                   "fee, block_height, block_time, confirmed, created_at, updated_at")


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
            # The newest bucket of each roll-up is still forming when it reaches past the newest 1m bar.
            cur.execute(f"UPDATE pressure_pressurebar SET final = false WHERE interval = '{interval}' AND "
                        f"bucket_start + interval '{seconds} seconds' > (SELECT max(bucket_start) + "
                        f"interval '1 minute' FROM pressure_pressurebar WHERE interval = '1m')")


def _database_ensure() -> None:
    """The pressureweb_pages database, created when missing; Django set up on it."""
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'pressureweb_pages'").fetchone()
        if not exists:
            conn.execute("CREATE DATABASE pressureweb_pages")
    os.environ["DATABASE_URL"] = DB_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pressureweb.settings")
    import django

    django.setup()


def _instrument_bars_text(*, pk: int, n: int, start: datetime, minutes: int, tail: str) -> str:
    """The COPY text of instrument number ``n``'s 1m bars: a deterministic walk of its price."""
    buf = io.StringIO()
    price = 100.0 + n
    for m in range(minutes):
        ts = start + timedelta(minutes=m)
        price *= 1 + ((m * 7919 + n) % 200 - 100) / 1e5
        buy, sell = 1 + (m % 13) / 10, 1 + (m % 17) / 10
        buf.write(f"{pk}\t1m\t{ts.isoformat()}\t{price:.2f}\t{price * 1.001:.2f}\t{price * 0.999:.2f}\t"
                  f"{price:.2f}\t{price:.2f}\t{m % 50 + 1}\t{buy}\t{sell}\t{buy * price:.4f}\t"
                  f"{sell * price:.4f}\t{buy - sell}\t{sell / (buy + sell)}\t0.5\t-0.1\t-0.05\t0\t0.02\t60\t"
                  f"10\t12\t{ts.isoformat()}\t{{}}\t[]\t\ttrades\tt{tail}\n")
    return buf.getvalue()


def _bars_seed(connection) -> None:
    """DAYS of 1m bars for INSTRUMENTS instruments, replacing every stored bar."""
    import psycopg

    from apps.markets.services import instrument_ensure
    from apps.pressure.models import Episode, PressureBar, RegimeCalibration

    PressureBar.objects.all().delete()
    Episode.objects.all().delete()
    RegimeCalibration.objects.all().delete()
    end = datetime.now(tz=UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=DAYS)
    cols = list(BAR_COLUMNS)
    with psycopg.connect(DB_URL.replace("postgres://", "postgresql://")) as conn:
        # Columns added since this seed was written get a neutral value.
        extra = _columns_not_null_without_default(conn, set(cols))
    neutral = {"jsonb": "{}", "json": "{}", "text": "", "character varying": ""}
    tail = "".join(f"\t{neutral.get(kind, '0')}" for _, kind in extra)
    cols += [name for name, _ in extra]
    for n in range(INSTRUMENTS):
        inst = instrument_ensure(exchange_slug="bench", market="spot", symbol=f"C{n:02d}USDT", base=f"C{n:02d}",
                                 quote="USDT")
        text = _instrument_bars_text(pk=inst.pk, n=n, start=start, minutes=DAYS * 1440, tail=tail)
        with connection.cursor() as cur, cur.cursor.copy(
                f"COPY pressure_pressurebar ({', '.join(cols)}) FROM STDIN") as cp:
            cp.write(text)
        print(f"seeded {inst.symbol}", file=sys.stderr, flush=True)


def seed() -> dict:
    _database_ensure()
    from django.core.management import call_command
    from django.db import connection

    from apps.pressure.models import PressureBar

    call_command("migrate", verbosity=0)
    newest = PressureBar.objects.filter(interval="1m").order_by("-bucket_start").values_list(
        "bucket_start", flat=True).first()
    reseed = (PressureBar.objects.filter(interval="1m").count() < INSTRUMENTS * DAYS * 1440
              or newest < datetime.now(tz=UTC) - BARS_STALE)
    if reseed:
        _bars_seed(connection)
    _rollups(connection)
    _index_seed()
    if reseed:
        with connection.cursor() as cur:
            # The index pass rewrote every bar: without this, autovacuum would clean up millions of dead rows
            # while the pages are timed, which a live install (vacuumed as it goes) never does all at once.
            cur.execute("VACUUM ANALYZE pressure_pressurebar")
    return _flows_seed(connection)


def _index_seed() -> None:
    """The index, regimes and episodes of every instrument's final bars, by the real engine, when missing."""
    from apps.markets.models import Instrument
    from apps.pressure.models import PressureBar
    from apps.pressure.services.history import history_index_refresh, history_span

    for inst in Instrument.objects.filter(exchange__slug="bench").order_by("symbol"):
        for interval in ("1m", "5m", "1h"):
            span = history_span(instrument=inst, interval=interval)
            if span is None or PressureBar.objects.filter(instrument=inst, interval=interval,
                                                          spi__isnull=False).exists():
                continue
            started = time.monotonic()
            done = history_index_refresh(instrument=inst, interval=interval, start_ms=span[0], end_ms=span[1] + 1)
            print(f"index of {inst.symbol} {interval}: {done:,} bars in {time.monotonic() - started:.1f} s",
                  file=sys.stderr, flush=True)


def _flows_seeded(now: datetime) -> bool:
    from django.db.models import Count, Max

    from apps.flows.models import ALL_EXCHANGES, FlowBar

    for asset in FLOW_ASSETS:
        agg = FlowBar.objects.filter(asset=asset, exchange=ALL_EXCHANGES).aggregate(n=Count("id"),
                                                                                    last=Max("bucket_start"))
        if agg["n"] < DAYS * 24 or agg["last"] < now - FLOW_STALE:
            return False
    return True


def _flow_draws(asset: str, exchanges: int, weights, start: datetime, now: datetime, rng) -> dict:
    """The random draws of ``_flow_transactions``, one array per field, over the final transactions."""
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
    ex = rng.choice(exchanges, size=n, p=weights)
    p_in = 0.5 + 0.12 * np.sin(2 * np.pi * hour_of / (24 * 6)) + 0.05 * np.sin(2 * np.pi * hour_of / 41)
    inflow = rng.random(n) < p_in
    units = np.clip(rng.lognormal(np.log(median * scale), sigma, n), 1, largest * scale).astype(np.int64)
    e2e = rng.random(n) < 0.03
    other = (ex + rng.integers(1, exchanges, n)) % exchanges
    change = np.where(btc & ~inflow, (units * rng.uniform(0.1, 4, n)).astype(np.int64), 0)
    fee = np.where(btc & ~inflow, rng.integers(2_000, 40_000, n), 0)
    grid = 600 if btc else 12
    block_time = at // grid * grid
    height = (870_000 if btc else 21_000_000) + (block_time - t0) // grid
    words = rng.integers(0, 2**63, size=(n, 4), dtype=np.int64)
    logs = rng.integers(0, 400, n)
    return {"hours": hours, "hour_of": hour_of, "ex": ex, "inflow": inflow, "units": units, "e2e": e2e,
            "other": other, "change": change, "fee": fee, "block_time": block_time, "height": height,
            "words": words, "logs": logs}


def _flow_transactions(asset: str, exchanges: list[str], weights, start: datetime, now: datetime, rng):
    """Synthetic final transactions of ``asset`` with the labelled exchanges, hour by hour since ``start``.

    A daily activity cycle, an inflow share drifting over days (so netflow and its z-score have
    regimes), lognormal amounts (a few whales per hour), 3% exchange-to-exchange transfers (one
    record per side), change and fees on Bitcoin withdrawals. Returns the FlowTx COPY text and
    the per-hour netflow of each exchange (base units, for the reserves).
    """
    import numpy as np

    chain = FLOW_ASSETS[asset][0]
    btc = chain == "btc"
    d = _flow_draws(asset, len(exchanges), weights, start, now, rng)
    hour_of, ex, other, inflow, units, e2e = d["hour_of"], d["ex"], d["other"], d["inflow"], d["units"], d["e2e"]
    change, fee, block_time, height, words, logs = (d["change"], d["fee"], d["block_time"], d["height"],
                                                    d["words"], d["logs"])
    net = np.zeros((len(exchanges), d["hours"]), dtype=np.float64)
    stamp = now.isoformat()
    out = io.StringIO()
    for i in range(len(units)):
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
    return out.getvalue(), len(units) + int(e2e.sum()), net


def _btc_close_stand_in(hours, rng):
    """selectors.hourly_close_usd with a random walk for BTC (the bench has no Binance BTCUSDT bars)."""
    import numpy as np
    import pandas as pd

    from apps.flows import selectors

    walk = np.exp(np.cumsum(rng.normal(0, 0.004, len(hours))))
    btc_close = pd.Series(BTC_START_PRICE * walk, index=hours, dtype="float64")
    original_close = selectors.hourly_close_usd

    def close(*, asset, start, end):
        if asset == "BTC":
            return btc_close[(btc_close.index >= selectors.floor_hour(start))
                             & (btc_close.index <= selectors.floor_hour(end))]
        return original_close(asset=asset, start=start, end=end)

    return close


def _flow_exchanges_ranked(chain: str) -> list[dict]:
    """The FLOW_EXCHANGES exchanges of ``chain`` with the most active labelled wallets, and their counts."""
    from django.db.models import Count

    from apps.flows.models import ExchangeWallet

    return list(ExchangeWallet.objects.filter(chain=chain, active=True).values("exchange")
                .annotate(n=Count("id")).order_by("-n", "exchange")[:FLOW_EXCHANGES])


def _btc_pending_seed(*, chain: str, asset: str, exchanges: list[str], now: datetime, rng) -> int:
    """Not yet final: a few deposits seen in the mempool or with one confirmation (the page's pending bars)."""
    import numpy as np

    from apps.flows.models import FlowTx

    tip = FlowTx.objects.filter(chain=chain).order_by("-block_height").values_list("block_height",
                                                                                   flat=True).first()
    FlowTx.objects.bulk_create([FlowTx(
        chain=chain, asset=asset, txid=f"{rng.integers(0, 2**63):016x}" * 4, exchange=exchanges[i % 3],
        inflow=int(rng.lognormal(np.log(5 * 10**7), 1.5)), confirmed=False,
        block_height=None if i % 2 else tip + 1, block_time=None if i % 2 else now - timedelta(minutes=4),
    ) for i in range(8)])
    return 8


def _btc_reserves_seed(*, chain: str, asset: str, exchanges: list[str], wallets, net, hours) -> None:
    """Hourly reserve snapshots: a balance per exchange that moves with its netflow, never below zero."""
    import numpy as np

    from apps.flows.models import ALL_EXCHANGES, ReserveSnapshot

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


def _flow_bars_compute(*, chain: str, asset: str, start: datetime, end: datetime, close) -> int:
    """The hourly FlowBar rows of ``asset`` by the real services.flow_bars_refresh, valued at ``close``."""
    from unittest import mock

    from apps.flows import selectors, services

    bars = 0
    with mock.patch.object(selectors, "hourly_close_usd", close):
        # A day at a time, as syncs refresh what they touched: over the whole month at once, an ERC-20
        # exchange-to-exchange transfer makes aggregate._per_tx fail (its int64 guard turns outflow into
        # Python ints over that many rows, and pandas refuses to write them into the int64 internal column).
        for day in range(DAYS + 1):
            first = start + timedelta(days=day)
            bars += services.flow_bars_refresh(chain=chain, asset=asset, start=first,
                                               end=min(first + timedelta(hours=23), end), publish=False)
    return bars


def _flow_asset_seed(connection, *, asset: str, start: datetime, end: datetime, now: datetime, hours, rng,
                     close) -> dict:
    """One asset's transactions (COPY), its pending inflows and reserves (BTC), then its bars; its report."""
    import numpy as np

    from apps.flows.models import ASSET_DECIMALS

    chain = FLOW_ASSETS[asset][0]
    t = time.monotonic()
    ranked = _flow_exchanges_ranked(chain)
    exchanges = [r["exchange"] for r in ranked]
    wallets = np.array([r["n"] for r in ranked], dtype=np.float64)
    text, rows, net = _flow_transactions(asset, exchanges, wallets / wallets.sum(), start, now, rng)
    with connection.cursor() as cur, cur.cursor.copy(f"COPY flows_flowtx ({FLOW_TX_COLUMNS}) FROM STDIN") as cp:
        cp.write(text)
    if chain == "btc":
        rows += _btc_pending_seed(chain=chain, asset=asset, exchanges=exchanges, now=now, rng=rng)
        _btc_reserves_seed(chain=chain, asset=asset, exchanges=exchanges, wallets=wallets, net=net, hours=hours)
    copied = time.monotonic() - t
    bars = _flow_bars_compute(chain=chain, asset=asset, start=start, end=end, close=close)
    print(f"seeded {asset} flows: {rows} FlowTx rows, {bars} FlowBar rows", file=sys.stderr, flush=True)
    return {"chain": chain, "exchanges": exchanges, "flow_txs": rows, "bars": bars,
            "decimals": ASSET_DECIMALS[asset], "txs_seconds": round(copied, 1),
            "bars_seconds": round(time.monotonic() - t - copied, 1)}


def _flows_seed(connection) -> dict:
    """30 days of exchange flows as production would hold them, unless present and fresh.

    Wallet labels through the real import (the shipped files); synthetic final FlowTx rows of the
    labelled exchanges (COPY), a few pending BTC inflows, hourly BTC reserve snapshots; then the
    hourly FlowBar rows (every exchange with flows in the hour, and ``all``) by the real
    services.flow_bars_refresh, which aggregates the stored FlowTx rows, values them in USD and
    computes the netflow z-scores. Its BTC price is our hourly close, read from Binance BTCUSDT
    bars the bench has not got: a random walk stands in for it here.
    """
    import numpy as np
    import pandas as pd

    from apps.flows import selectors, services
    from apps.flows.models import FlowBar, ReserveSnapshot

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
    close = _btc_close_stand_in(hours, rng)
    for asset in FLOW_ASSETS:
        report[asset] = _flow_asset_seed(connection, asset=asset, start=start, end=end, now=now, hours=hours,
                                         rng=rng, close=close)
    with connection.cursor() as cur:
        cur.execute("ANALYZE flows_flowtx")
        cur.execute("ANALYZE flows_flowbar")
    report["flow_bars"] = FlowBar.objects.count()
    report["reserve_snapshots"] = ReserveSnapshot.objects.count()
    report["seconds"] = round(time.monotonic() - started, 1)
    return report
