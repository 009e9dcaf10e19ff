"""`make bench`: every benchmark, each beside a baseline measured in the same run, into bench/RESULTS.md.

The file names the commit it ran on (and says so when the work tree differed from it). A benchmark that
fails leaves its section in the file, marked MISSING with the reason: nothing drops out silently.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
N = int(os.environ.get("BENCH_TRADES", "1000000"))
# A section that hangs must not stall the rest (the longest, the page benchmark, takes well under this).
SECTION_TIMEOUT_S = float(os.environ.get("BENCH_SECTION_TIMEOUT_S", "1800"))
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
console = Console()


def _ok(met: bool) -> str:
    return "OK" if met else "MISSED"


def run_module(module: str, *args: str, env: dict | None = None, timeout_s: float = SECTION_TIMEOUT_S) -> dict:
    """Run `python -m module args` and return the JSON object its last line prints.

    A run that outlives `timeout_s` is killed with everything it started, and raises: its section is
    marked missing instead of the whole benchmark waiting forever."""
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        last = (stderr or stdout).strip().splitlines()[-1:]
        raise RuntimeError(f"killed after {timeout_s:.0f} s without finishing; last line: {last}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {(stderr or stdout).strip().splitlines()[-1:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def fresh_postgres(name: str) -> str | None:
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as exc:
        console.print(f"[yellow]PostgreSQL not reachable at {PG_ADMIN}: {exc}")
        return None
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgres://") + f"/{name}"


def fresh_sqlite(name: str) -> str:
    path = ROOT / "var" / f"{name}.sqlite3"
    path.parent.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def backends(name: str) -> list[str]:
    return [fresh_sqlite(name), *filter(None, [fresh_postgres(name)])]


# --- sections: each returns markdown lines -------------------------------------------------------------------


def section_ingest() -> list[str]:
    lines = [f"{N:,} real trades (the Binance BTCUSDT recording looped).", "",
             "| backend | metric | value | baseline (same run) | goal |", "| --- | --- | --- | --- | --- |"]
    for url in backends("pressureweb_bench"):
        r = run_module("bench.ingest", str(N), env={"DATABASE_URL": url, "DEBUG": "1"})
        rate, goal = r["trades"] / r["store_s"], 50_000 if r["vendor"] == "sqlite" else 100_000
        lines.append(f"| {r['vendor']} | ingest (validate + insert, idempotent) | {rate:,.0f} trades/s | | "
                     f">= {goal:,}/s {_ok(rate >= goal)} |")
        lines.append(f"| {r['vendor']} | 1m bar math (numpy: OHLC, counts, exact volume and quote sums) | "
                     f"{r['bar_math_s']:.3f} s | {r['bar_loop_s']:.3f} s (a Python loop doing the same) | "
                     f"< 1 s {_ok(r['bar_math_s'] < 1)} |")
        lines.append(f"| {r['vendor']} | re-ingest 50,000 duplicates | {r['duplicate_batch_s']:.3f} s | | |")
        lines.append(f"| {r['vendor']} | 1m bars from the database (trades + book) | "
                     f"{r['minute_bars_full_s']:.3f} s | | |")
    return lines


def section_live() -> list[str]:
    lines = ["The replay's real Binance BTCUSDT trades and book samples, one batch per second after 5 hours of "
             "history: store, book samples, 1m/5m/1h bars, the index (the forming bar's at most every "
             "SPI_PROVISIONAL_MS), finalisation with calibrated regimes and episodes, and the publish to Redis after "
             "commit. The drop-risk prediction of a final bar runs in its own task (see the track record section).",
             "", "| backend | live batch p50 / p95 | baseline: store only, p50 / p95 | trades per batch | goal |",
             "| --- | --- | --- | --- | --- |"]
    for url in backends("pressureweb_bench_live"):
        r = run_module("bench.live", env={"DATABASE_URL": url, "DEBUG": "1"})
        live, base = r["live_batch"], r["baseline_store_only"]
        lines.append(f"| {r['vendor']} | {live['p50_ms']} / {live['p95_ms']} ms | {base['p50_ms']} / "
                     f"{base['p95_ms']} ms | {r['trades_per_batch_mean']} | p50 <= 20 ms {_ok(live['p50_ms'] <= 20)} |")
    return lines


def section_klines() -> list[str]:
    r = run_module("bench.klines")
    lines = ["9 months of Binance spot BTCUSDT 5m klines (78,912) into a fresh database: `import_klines` as it runs "
             "by default (5m and 1h bars, then their index, calibrated regimes and episodes), and with `--no-index` "
             "(bars only). Baseline in the same run: a bare insert of the very same bar rows into an empty copy of "
             "the bar table (PostgreSQL COPY, SQLite executemany), the floor under any importer of these bars "
             "(`python -m bench.klines`).", "",
             "| backend | import, best of 3 | --no-index, best of 3 | baseline: bare insert of the bars | goal |",
             "| --- | --- | --- | --- | --- |"]
    for b in r["results"]:
        rate = b["klines_per_s_best"]
        lines.append(f"| {b['vendor']} | {rate:,.0f} klines/s ({min(b['cold_s']):.2f} s) | "
                     f"{b['store_only_klines_per_s_best']:,.0f} klines/s ({min(b['store_only_s']):.2f} s) | "
                     f"{b['bare_bars_per_s_best']:,.0f} bars/s ({min(b['bare_insert_s']):.2f} s for {b['bars']:,}) | "
                     f">= 200,000 klines/s {_ok(rate >= 200_000)} |")
    return [*lines, "", "```json", json.dumps(r, indent=2), "```"]


def section_track_record() -> list[str]:
    r = run_module("bench.track_record")
    h = r["horizons"].get("15", {})
    lines = ["Walk-forward on 9 months of real BTCUSDT 5m bars (monthly refits, each from the bars before it): "
             "development 2023-12..2024-03, held out 2024-04..06 (`python -m bench.track_record`).", "",
             "| window | drop_risk AUC / Brier skill | reference logistic (same run) | baseline_volatility AUC | "
             "taker sell ratio AUC | goal (AUC >= 0.88, skill >= 0.07, above volatility) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for window in ("development", "held-out"):
        w = h.get(window, {})
        met = (w.get("drop_risk_auc", 0) >= 0.88 and w.get("drop_risk_brier_skill", 0) >= 0.07
               and w.get("drop_risk_auc", 0) > w.get("baseline_volatility_auc", 1))
        lines.append(f"| {window} | {w.get('drop_risk_auc', 0):.4f} / {w.get('drop_risk_brier_skill', 0):.4f} | "
                     f"{w.get('reference_logistic_auc', 0):.4f} / {w.get('reference_logistic_brier_skill', 0):.4f} | "
                     f"{w.get('baseline_volatility_auc', 0):.4f} | {w.get('baseline_taker_sell_ratio_auc', 0):.4f} | "
                     f"{_ok(met)} |")
    lines += ["", f"A year of 5m bars ({r['year_bars']:,}, {r['year_fits']} fits): walk-forward track record "
                  f"{r['year_track_record_s']} s (goal < 60 s: {_ok(r['year_track_record_s'] < 60)}); one final bar's "
                  f"prediction {r['predict_one_bar_ms']} ms.", "", "```json", json.dumps(r, indent=2), "```"]
    return lines


def section_json(module: str, intro: str) -> Callable[[], list[str]]:
    def run() -> list[str]:
        return [intro, "", "```json", json.dumps(run_module(module), indent=2), "```"]
    return run


def section_pages() -> list[str]:
    figures = run_module("bench.pages")
    lines = [f"{figures['clients']} concurrent clients, {figures['daphne_processes']} Daphne processes, "
             f"{figures['seconds_per_page']} s per page and phase. Cold = the first request after new data (one at a "
             "time); live = the load while real ingestion writes bars. The goal counts every phase, cold included. "
             "The seeded bars are final and carry their index, regimes and episodes (computed by the real engine).",
             "",
             "| page | warm p50 / p95 | live p50 / p95 | cold p50 / p95 | size sent (gzip) "
             "| goal p95 < 100 ms (all phases) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for page, warm in figures["pages"].items():
        live, cold = figures["pages_live_writes"][page], figures["pages_cold"][page]
        worst = max(warm["p95_ms"], live["p95_ms"], cold["p95_ms"])
        goal = "" if page.startswith("baseline") else _ok(worst < 100)
        lines.append(f"| {page} | {warm['p50_ms']} / {warm['p95_ms']} ms | {live['p50_ms']} / {live['p95_ms']} ms | "
                     f"{cold['p50_ms']} / {cold['p95_ms']} ms | {warm['bytes'] / 1000:,.0f} kB | {goal} |")
    return [*lines, "", "```json", json.dumps(figures, indent=2), "```"]


def section_browser() -> list[str]:
    r = run_module("bench.browser")
    chart = r["first_chart"]
    lines = ["`make run` on a fresh SQLite database, measured in Debian Chromium; first chart on a cold browser cache "
             f"at 1440x900 ({chart['runs']} runs, each in a fresh browser context).", "",
             "| measure | value | goal |", "| --- | --- | --- |",
             f"| `make run` (installed) to the first page answered | {r['make_run_to_first_page_s']:.1f} s | "
             f"<= 60 s {_ok(r['make_run_to_first_page_s'] <= 60)} |",
             f"| first chart drawn after navigation, median | {chart['chart_ms_median']:,.0f} ms | "
             f"<= 1,000 ms {_ok(chart['chart_ms_median'] <= 1000)} |",
             f"| first chart, slowest run | {chart['chart_ms_max']:,.0f} ms | |",
             f"| bytes transferred, median | {chart['transfer_kb_median']:,.0f} kB | |", "",
             "Lighthouse 12.2.3; mobile is Lighthouse's default throttled phone. Each page and form ran several times "
             "in a row; the table shows the run with the median performance score (Lighthouse's advice for its "
             "run-to-run variance), and every run's performance score and TBT:", "",
             "| page | accessibility | performance (median run) | LCP | TBT | performance, every run | TBT, every run "
             "| goal |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for page, s in r["lighthouse"].items():
        met = s["accessibility"] >= 95 and s["performance"] >= 90
        every = " / ".join(map(str, s.get("performance_runs", [s["performance"]])))
        tbts = " / ".join(f"{t:,}" for t in s.get("tbt_runs_ms", [s["tbt_ms"]]))
        lines.append(f"| {page} | {s['accessibility']} | {s['performance']} | {s['lcp_ms']:,} ms | {s['tbt_ms']:,} ms "
                     f"| {every} | {tbts} ms | a11y >= 95, perf >= 90 {_ok(met)} |")
    failed = {page: s["failed_starts"] for page, s in r["lighthouse"].items() if s.get("failed_starts")}
    if failed:
        lines += ["", f"Lighthouse runs that failed to start and were started once more: {failed}"]
    return lines


SECTIONS: list[tuple[str, Callable[[], list[str]]]] = [
    ("Ingest and bar math (`python -m bench.ingest`)", section_ingest),
    ("The live stored path per 1-second batch (`python -m bench.live`)", section_live),
    ("Kline import (`python -m bench.klines`)", section_klines),
    ("Track record and drop-risk forecast (`python -m bench.track_record`)", section_track_record),
    ("On-chain flow classification (`python -m bench.flows`)",
     section_json("bench.flows", "Pure flow classification and aggregation on the real recorded blocks.")),
    ("WebSocket fan-out, Daphne + channels_redis (`python -m bench.ws_fanout`)",
     section_json("bench.ws_fanout", "Clients in their own process; the baseline is a channel per socket.")),
    ("Collector (`python -m bench.collector`)",
     section_json("bench.collector", "Binance trade messages from the local exchange server into SQLite.")),
    ("Pages under load, PostgreSQL, 30 days x 50 instruments (`python -m bench.pages`)", section_pages),
    ("First ten minutes: `make run`, first chart, Lighthouse (`python -m bench.browser`)", section_browser),
]


def commit() -> str:
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return f"`{sha[:10]}`" + (" (with uncommitted changes to tracked files)" if dirty else "")


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from pressureweb import embedded_redis

    only = set(sys.argv[1:])
    with embedded_redis.running() if "REDIS_URL" not in os.environ else _nothing():
        # The benchmarks share this run's Redis: each would otherwise start its own on the same port.
        os.environ.setdefault("REDIS_URL", embedded_redis.url())
        body = []
        for title, run in SECTIONS:
            if only and not any(word in title.lower() for word in only):
                continue
            with console.status(f"{title}…"):
                try:
                    lines = run()
                except Exception as exc:  # noqa: BLE001 - a failed benchmark is reported, not hidden
                    lines = [f"**MISSING**: this benchmark failed in this run ({type(exc).__name__}: {exc})."]
                    console.print(f"[red]{title} failed: {exc}")
            body += [f"## {title}", "", *lines, ""]
            console.print(f"[green]done[/green] {title}")
    machine = (f"{platform.node()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores · "
               f"Python {platform.python_version()}")
    header = ["# Benchmark results", "",
              f"`make bench` on commit {commit()}, {datetime.now(tz=UTC):%Y-%m-%d %H:%M} UTC, on {machine}. "
              "Every baseline was measured in the same run.", ""]
    path = ROOT / "bench" / "RESULTS.md"
    path.write_text("\n".join([*header, *body]))
    console.print(f"written to {path}")


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
