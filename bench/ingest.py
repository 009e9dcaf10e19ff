"""One backend's ingest and bar-math benchmark; run by bench/run.py with DATABASE_URL set (the live
stored path per 1-second batch is bench/live.py).

Trades are the real Binance spot BTCUSDT recording, looped with shifted ids and times to
reach the wanted count. Prints one JSON object.
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
from django.db import connection  # noqa: E402

from apps.markets.models import Trade  # noqa: E402
from apps.markets.services import instrument_ensure, trades_store  # noqa: E402
from apps.markets.validation import TradeRow  # noqa: E402
from apps.pressure import bars as barmath  # noqa: E402
from apps.pressure.models import PressureBar  # noqa: E402
from apps.pressure.services import minute_bars_compute, trade_arrays  # noqa: E402
from tests.recordings import raw_trades  # noqa: E402


def looped_trades(n: int) -> list[TradeRow]:
    base = raw_trades("spot_btcusdt_20240808.gz") + raw_trades("spot_btcusdt_20240809.gz")
    span_ids = base[-1][0] - base[0][0] + 1
    span_ms = base[-1][1] - base[0][1] + 1000
    out = []
    loop = 0
    while len(out) < n:
        for tid, t, p, q, m in base:
            out.append(TradeRow(tid + loop * span_ids, t + loop * span_ms, p, q, m))
            if len(out) == n:
                break
        loop += 1
    return out


def bare_copy(rows: list[TradeRow], *, instrument_id: int, foreign_key: bool = True) -> float:
    """The baseline: psycopg COPY of the same rows into an empty copy of the trade table, with the same
    indexes and (unless told otherwise) the same foreign key to the instrument, which PostgreSQL checks
    per row. No validation, no duplicate check, no bars."""
    raw = connection.connection
    with raw.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_copy")
        cur.execute("CREATE TABLE bench_copy (LIKE markets_trade INCLUDING ALL)")
        if foreign_key:  # as Django declares it on markets_trade
            cur.execute("ALTER TABLE bench_copy ADD FOREIGN KEY (instrument_id) REFERENCES markets_instrument (id)"
                        " DEFERRABLE INITIALLY DEFERRED")
        raw.commit()
        start = time.perf_counter()
        cols = "instrument_id, trade_id, time_ms, price, qty, taker_sell"
        with cur.copy(f"COPY bench_copy ({cols}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row((instrument_id, r.trade_id, r.time_ms, r.price, r.qty, r.taker_sell))
        raw.commit()
        elapsed = time.perf_counter() - start
        cur.execute("DROP TABLE bench_copy")
        raw.commit()
    return elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    call_command("migrate", verbosity=0)
    inst = instrument_ensure(exchange_slug="bench", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    Trade.objects.filter(instrument=inst).delete()
    rows = looped_trades(n)
    result = {"vendor": connection.vendor, "trades": n}

    start = time.perf_counter()
    for i in range(0, n, 50_000):
        trades_store(instrument=inst, rows=rows[i:i + 50_000])
    result["store_s"] = time.perf_counter() - start

    start = time.perf_counter()
    again = trades_store(instrument=inst, rows=rows[:50_000])
    result["duplicate_batch_s"] = time.perf_counter() - start
    assert again.inserted == 0

    if connection.vendor == "postgresql":
        result["bare_copy_s"] = bare_copy(rows, instrument_id=inst.pk)
        result["bare_copy_no_fk_s"] = bare_copy(rows, instrument_id=inst.pk, foreign_key=False)

    first, last = rows[0].time_ms, rows[-1].time_ms
    start = time.perf_counter()
    arrays = trade_arrays(instrument=inst, start_ms=first, end_ms=last + 1)
    result["fetch_s"] = time.perf_counter() - start
    start = time.perf_counter()
    bars = barmath.trade_bars(*arrays, interval_ms=60_000)
    result["bar_math_s"] = time.perf_counter() - start
    result["bars"] = len(bars)
    start = time.perf_counter()
    minute_bars_compute(instrument=inst, start_ms=first, end_ms=last + 1)
    result["minute_bars_full_s"] = time.perf_counter() - start

    # Baseline for the bar math: a plain Python loop doing the same work over the same arrays (open, high,
    # low, close, trades, taker buy and sell volume and quote, in exact integers).
    t, price, qty, sell = (a.tolist() for a in arrays)
    start = time.perf_counter()
    acc: dict[int, list] = {}
    for i in range(len(t)):
        p, q = price[i], qty[i]
        b = acc.get(t[i] - t[i] % 60_000)
        if b is None:
            b = acc[t[i] - t[i] % 60_000] = [p, p, p, p, 0, 0, 0, 0, 0]
        if p > b[1]:
            b[1] = p
        if p < b[2]:
            b[2] = p
        b[3] = p
        b[4] += 1
        side = 5 if sell[i] else 6
        b[side] += q
        b[side + 2] += p * q
    result["bar_loop_s"] = time.perf_counter() - start
    assert len(acc) == len(bars) and np.array_equal(bars.trades, [v[4] for _, v in sorted(acc.items())])
    assert [int(x) for x in bars.sell_quote] == [v[7] for _, v in sorted(acc.items())]
    PressureBar.objects.filter(instrument=inst).delete()
    Trade.objects.filter(instrument=inst).delete()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
