"""`make bench`: ingest and bar benchmarks on SQLite and (when reachable) PostgreSQL.

Each figure is reported with a baseline measured in the same run, and written to
bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
N = int(os.environ.get("BENCH_TRADES", "1000000"))
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
console = Console()


def run_backend(database_url: str) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "1", "PYTHONPATH": str(ROOT)}
    with console.status(f"benchmarking {database_url.split('://')[0]} with {N:,} trades…"):
        out = subprocess.run([sys.executable, "-m", "bench.ingest", str(N)], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def postgres_url() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute("DROP DATABASE IF EXISTS pressureweb_bench")
            conn.execute("CREATE DATABASE pressureweb_bench")
    except psycopg.Error as exc:
        console.print(f"[yellow]PostgreSQL not reachable at {PG_ADMIN}: {exc}; skipping it")
        return None
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgres://") + "/pressureweb_bench"


def main() -> None:
    # Cache invalidation and the channel layer need Redis: the embedded one unless REDIS_URL is set.
    sys.path.insert(0, str(ROOT))
    from pressureweb import embedded_redis

    if "REDIS_URL" in os.environ:
        _main()
    else:
        with embedded_redis.running():
            _main()


def _main() -> None:
    sqlite_path = ROOT / "var" / "bench.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
    results = [run_backend(f"sqlite:///{sqlite_path}")]
    pg = postgres_url()
    if pg:
        results.append(run_backend(pg))

    table = Table(title=f"PressureWeb ingest and bars, {N:,} real trades (looped Binance BTCUSDT)")
    for col in ("backend", "metric", "value", "baseline", "ratio", "goal"):
        table.add_column(col)
    lines = []
    for r in results:
        rate = r["trades"] / r["store_s"]
        goal = 50_000 if r["vendor"] == "sqlite" else 100_000
        rows = [(r["vendor"], "ingest (validate + insert, idempotent)", f"{rate:,.0f} trades/s", "", "",
                 f">= {goal:,}/s {'OK' if rate >= goal else 'MISSED'}")]
        if "bare_copy_s" in r:
            copy_rate = r["trades"] / r["bare_copy_s"]
            ratio = r["bare_copy_s"] / r["store_s"]
            rows.append((r["vendor"], "ingest vs bare psycopg COPY into an identical table (indexes + FK)",
                         f"{rate:,.0f}/s", f"{copy_rate:,.0f}/s", f"{ratio:.2f}",
                         f">= 0.5 {'OK' if ratio >= 0.5 else 'MISSED'}"))
            no_fk = r["trades"] / r["bare_copy_no_fk_s"]
            rows.append((r["vendor"], "ingest vs bare COPY into the table without its foreign key",
                         f"{rate:,.0f}/s", f"{no_fk:,.0f}/s", f"{r['bare_copy_no_fk_s'] / r['store_s']:.2f}", ""))
        rows.append((r["vendor"], f"1m bar math on {r['trades']:,} trades (numpy)", f"{r['bar_math_s']:.3f} s",
                     f"{r['bar_loop_s']:.3f} s (Python loop)", f"{r['bar_loop_s'] / r['bar_math_s']:.0f}x faster",
                     f"< 1 s {'OK' if r['bar_math_s'] < 1 else 'MISSED'}"))
        rows.append((r["vendor"], "fetch trades as integer arrays", f"{r['fetch_s']:.3f} s", "", "", ""))
        rows.append((r["vendor"], "1m bars from DB incl. fetch + book", f"{r['minute_bars_full_s']:.3f} s", "", "", ""))
        rows.append((r["vendor"], "re-ingest 50,000 duplicates", f"{r['duplicate_batch_s']:.3f} s", "", "", ""))
        rows.append((r["vendor"], f"live 1-second batch (~{r['live_1s_trades_mean']:.0f} trades): store, bars, SPI, "
                     "episodes", f"p50 {r['live_1s_batch_ms_p50']:.1f} ms, p95 {r['live_1s_batch_ms_p95']:.1f} ms",
                     "", "", f"< 20 ms {'OK' if r['live_1s_batch_ms_p50'] < 20 else 'MISSED'} (p50)"))
        for row in rows:
            table.add_row(*row)
            lines.append("| " + " | ".join(row) + " |")
    console.print(table)

    extra = []
    for module, title in (("bench.indicators", "SPI components and index (pure, `python -m bench.indicators`)"),
                          ("bench.flows", "On-chain flow classification (pure, `python -m bench.flows`)"),
                          ("bench.ws_fanout", "WebSocket fan-out, Daphne + channels_redis "
                                              "(`python -m bench.ws_fanout`)"),
                          ("bench.pages", "Pages under load, PostgreSQL, 30 days x 50 instruments "
                                          "(`python -m bench.pages`)"),
                          ("bench.collector", "Collector: Binance trade messages from the local exchange server "
                                              "into SQLite (`python -m bench.collector`)")):
        with console.status(f"running {module}…"):
            out = subprocess.run([sys.executable, "-m", module], cwd=ROOT, capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
        if out.returncode != 0:
            console.print(f"[red]{module} failed:[/red] {out.stderr[-2000:]}")
            continue
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        console.print_json(data=figures)
        extra += [f"## {title}", ""]
        if module == "bench.pages":
            extra += _pages_table(figures)
        extra += ["```json", json.dumps(figures, indent=2), "```", ""]

    machine = f"{platform.node()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores · " \
              f"Python {platform.python_version()}"
    section = [
        "## Ingest and bars (`make bench`)", "",
        f"Run {datetime.now(tz=UTC):%Y-%m-%d %H:%M} UTC on {machine}.", "",
        "| backend | metric | value | baseline (same run) | ratio | goal |", "| --- | --- | --- | --- | --- | --- |",
        *lines, "",
        *extra,
    ]
    path = ROOT / "bench" / "RESULTS.md"
    path.write_text("# Benchmark results\n\nFigures from `make bench`; each baseline is measured in the same run.\n\n"
                    + "\n".join(section))
    console.print(f"written to {path}")


def _pages_table(figures: dict) -> list[str]:
    """Time to first byte per page against the goal (p95 under 100 ms), warm and with live writes."""
    lines = [f"{figures['clients']} concurrent clients, {figures['daphne_processes']} Daphne processes, "
             f"{figures['seconds_per_page']} s per page and phase; cold = the first request after a version bump, "
             "one at a time.", "",
             "| page | warm p50 / p95 | live writes p50 / p95 | cold p50 / p95 | requests/s (warm) | size | goal |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for page, warm in figures["pages"].items():
        live, cold = figures["pages_live_writes"][page], figures["pages_cold"][page]
        worst = max(warm["p95_ms"], live["p95_ms"])
        goal = "" if page.startswith("baseline") else f"p95 < 100 ms {'OK' if worst < 100 else 'MISSED'}"
        lines.append(f"| {page} | {warm['p50_ms']} / {warm['p95_ms']} ms | {live['p50_ms']} / {live['p95_ms']} ms | "
                     f"{cold['p50_ms']} / {cold['p95_ms']} ms | {warm['requests'] / figures['seconds_per_page']:.0f} "
                     f"| {warm['bytes'] / 1000:,.0f} kB | {goal} |")
    return [*lines, ""]


if __name__ == "__main__":
    main()
