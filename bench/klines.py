"""`python -m bench.klines`: import_klines on 9 months of real Binance spot BTCUSDT 5m klines (78,912, read in
place from ../shared/data), on SQLite and PostgreSQL (when reachable), into a fresh database.

Beside it, in the same run: a bare insert of the very same bars (the rows the import stored, as the database
hands them back) into an empty copy of the bar table with the same indexes: PostgreSQL COPY, SQLite
executemany. That is the floor any importer of these bars stands on. Also timed: parsing alone (read_klines
over the 9 files), the import with --no-index (bars only: the index, regimes and episodes of 85k bars are
most of the default import's time) and a re-import (which must change nothing). Prints a table and, last, one
JSON line.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KLINES = ROOT.parent / "shared" / "data" / "binance-klines-btcusdt-5m"
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_NAME = "pressureweb_bench_klines"
REPEAT = int(os.environ.get("BENCH_KLINES_REPEAT", "3"))
TARGET = 200_000  # klines/s (issue 16)


def _child() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pressureweb.settings")
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from apps.markets.importers import ReadStats
    from apps.markets.klines import read_klines
    from apps.markets.services import instrument_ensure
    from apps.pressure.models import PressureBar

    call_command("migrate", verbosity=0)
    files = sorted(KLINES.glob("BTCUSDT-5m-*.csv"))
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    args = [*map(str, files), "--symbol", "BTCUSDT", "--interval", "5m"]
    out = {"vendor": connection.vendor, "files": len(files), "cold_s": [], "cold_cpu_s": [], "bare_insert_s": []}

    def timed(fn) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - wall, time.process_time() - cpu

    def run_import(*extra: str) -> None:
        call_command("import_klines", *args, *extra, stdout=io.StringIO(), stderr=io.StringIO())

    out["store_only_s"] = []
    # Rounds alternate the import, the import without the index and the baseline, so all see the same
    # machine (it is shared).
    for _ in range(REPEAT):
        PressureBar.objects.filter(instrument=inst).delete()  # the first round runs on a fresh database
        out["store_only_s"].append(timed(lambda: run_import("--no-index"))[0])
        PressureBar.objects.filter(instrument=inst).delete()
        wall, cpu = timed(run_import)
        out["cold_s"].append(wall)
        out["cold_cpu_s"].append(cpu)
        out["bare_insert_s"].append(_bare_insert(connection, PressureBar._meta.db_table))
    out["klines"] = sum(1 for f in files for line in f.read_text().splitlines() if line)
    out["bars"] = PressureBar.objects.filter(instrument=inst, source="klines").count()
    before = list(PressureBar.objects.filter(instrument=inst).order_by("pk").values_list("pk", "updated_at"))
    out["reimport_s"], _ = timed(run_import)
    assert list(PressureBar.objects.filter(instrument=inst).order_by("pk").values_list("pk", "updated_at")) == before
    out["parse_s"], out["parse_cpu_s"] = timed(
        lambda: [read_klines(f, interval="5m", stats=ReadStats()) for f in files])
    print(json.dumps(out))


def _bare_insert(connection, table: str) -> float:
    """Time one insert of every stored bar into an empty copy of the table (same columns and indexes)."""
    raw = connection.connection
    from apps.pressure.models import PressureBar

    columns = ", ".join(f.column for f in PressureBar._meta.concrete_fields if f.column != "id")
    cur = raw.cursor()
    if connection.vendor == "postgresql":
        cur.execute("DROP TABLE IF EXISTS bench_bars")
        cur.execute(f"CREATE TABLE bench_bars (LIKE {table} INCLUDING ALL)")
        cur.execute("ALTER TABLE bench_bars ADD FOREIGN KEY (instrument_id) REFERENCES markets_instrument (id)"
                    " DEFERRABLE INITIALLY DEFERRED")
        buffer = io.BytesIO()
        with cur.copy(f"COPY (SELECT {columns} FROM {table}) TO STDOUT") as copy:
            for block in copy:
                buffer.write(block)
        raw.commit()
        start = time.perf_counter()
        with cur.copy(f"COPY bench_bars ({columns}) FROM STDIN") as copy:
            copy.write(buffer.getvalue())
        raw.commit()
        elapsed = time.perf_counter() - start
        cur.execute("DROP TABLE bench_bars")
        raw.commit()
        return elapsed
    cur.execute("DROP TABLE IF EXISTS bench_bars")
    schema = cur.execute("SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL", [table]).fetchall()
    for (sql,) in schema:  # the table and its indexes, renamed
        cur.execute(sql.replace(f'"{table}"', '"bench_bars"').replace('INDEX "', 'INDEX "b_'))
    rows = cur.execute(f"SELECT {columns} FROM {table}").fetchall()
    marks = ", ".join("?" * len(columns.split(", ")))
    start = time.perf_counter()
    cur.execute("BEGIN")
    cur.executemany(f"INSERT INTO bench_bars ({columns}) VALUES ({marks})", rows)
    cur.execute("COMMIT")
    elapsed = time.perf_counter() - start
    cur.execute("DROP TABLE bench_bars")
    return elapsed


def _run(database_url: str) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "bench.klines", "--child"], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _postgres_url() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_NAME}")
            conn.execute(f"CREATE DATABASE {PG_NAME}")
    except psycopg.Error as exc:
        print(f"PostgreSQL not reachable at {PG_ADMIN}: {exc}; skipping it", file=sys.stderr)
        return None
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgres://") + f"/{PG_NAME}"


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from rich.console import Console
    from rich.table import Table

    from pressureweb import embedded_redis

    sqlite_path = ROOT / "var" / "bench-klines.sqlite3"
    sqlite_path.parent.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
    load_before = os.getloadavg()[0]
    with embedded_redis.running() if "REDIS_URL" not in os.environ else contextlib.nullcontext():
        results = [_run(f"sqlite:///{sqlite_path}")]
        pg = _postgres_url()
        if pg:
            results.append(_run(pg))
    table = Table(title=f"import_klines, {results[0]['klines']:,} real BTCUSDT 5m klines (9 months), fresh database")
    for col in ("backend", "metric", "value", "baseline (same run)", "goal"):
        table.add_column(col)
    figures = {"load_average_1m": [load_before, os.getloadavg()[0]], "cpu_count": os.cpu_count(), "results": results}
    for r in results:
        n, first, best, bare = r["klines"], r["cold_s"][0], min(r["cold_s"]), min(r["bare_insert_s"])
        r["klines_per_s_fresh"], r["klines_per_s_best"] = n / first, n / best
        r["bare_bars_per_s_best"] = r["bars"] / bare
        r["store_only_klines_per_s_best"] = n / min(r["store_only_s"])
        goal = f">= {TARGET:,}/s {'OK' if n / best >= TARGET else 'MISSED'}"
        table.add_row(r["vendor"], "import, fresh database (first / best round)",
                      f"{n / first:,.0f} / {n / best:,.0f} klines/s", "", goal)
        table.add_row(r["vendor"], f"  {r['bars']:,} bars written (5m + 1h), best round", f"{best:.2f} s",
                      f"{bare:.2f} s bare insert ({r['bars'] / bare:,.0f} bars/s), ratio {bare / best:.2f}", "")
        table.add_row(r["vendor"], "  --no-index (bars only), best round",
                      f"{r['store_only_klines_per_s_best']:,.0f} klines/s", "", "")
        table.add_row(r["vendor"], f"  of which parsing ({r['files']} files)", f"{n / r['parse_s']:,.0f} klines/s",
                      "", "")
        table.add_row(r["vendor"], "re-import (nothing changes)", f"{n / r['reimport_s']:,.0f} klines/s", "", "")
    Console().print(table)
    print(json.dumps(figures))


if __name__ == "__main__":
    if "--child" in sys.argv:
        _child()
    else:
        main()
