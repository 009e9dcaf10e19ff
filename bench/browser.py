"""The first ten minutes, measured as a new user meets them: `python -m bench.browser`.

Starts `make run` on a free port with a fresh SQLite database and its own embedded Redis (what a fresh clone does
once installed), and measures:
- the time from `make run` to the overview answering 200 (migrate, collectstatic, the replay's backfill, start-up);
- the first chart on a cold browser cache at 1440x900 (bench.first_chart, each run in a fresh browser context);
- Lighthouse 12.2.3 (npm, run with Node and Debian Chromium) accessibility and performance on the overview and an
  instrument page, desktop and mobile: LIGHTHOUSE_RUNS runs each, of which the run with the median performance score
  is reported beside every run's score and TBT (Lighthouse's own advice for its run-to-run variance:
  https://github.com/GoogleChrome/lighthouse/blob/main/docs/variability.md).
Prints one JSON object on its last line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIGHTHOUSE_VERSION = "12.2.3"
NODE_DIR = ROOT / "var" / "node"
LIGHTHOUSE_RUNS = int(os.environ.get("BENCH_LIGHTHOUSE_RUNS", "3"))
PAGES = {"overview": "/", "instrument": "/markets/binance-replay/spot/BTCUSDT/"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except OSError:
        return 0


def lighthouse_bin() -> Path:
    binary = NODE_DIR / "node_modules" / ".bin" / "lighthouse"
    if not binary.exists():
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--prefix", str(NODE_DIR), f"lighthouse@{LIGHTHOUSE_VERSION}"],
                       check=True, capture_output=True)
    return binary


def lighthouse(url: str, *, desktop: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        cmd = [str(lighthouse_bin()), url, "--output=json", f"--output-path={out}", "--quiet",
               "--only-categories=performance,accessibility",
               "--chrome-flags=--headless=new --no-sandbox --disable-gpu"]
        if desktop:
            cmd.append("--preset=desktop")
        # A run that fails to start or to reach Chrome (it happens now and then on a loaded machine) is started once
        # more; the failure is counted in the result, and a second failure ends the section with Lighthouse's words.
        failures = []
        for _ in range(2):
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                                  env={**os.environ, "CHROME_PATH": "/usr/bin/chromium"})
            if done.returncode == 0:
                break
            failures.append(f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}")
        else:
            raise RuntimeError(f"lighthouse {url} failed twice: {failures}")
        report = json.loads(out.read_text())
    cats = report["categories"]
    audits = report["audits"]
    return {"performance": round(cats["performance"]["score"] * 100), "accessibility":
            round(cats["accessibility"]["score"] * 100),
            "lcp_ms": round(audits["largest-contentful-paint"]["numericValue"]),
            "tbt_ms": round(audits["total-blocking-time"]["numericValue"]), "failed_starts": failures}


def lighthouse_median(url: str, *, desktop: bool, runs: int) -> dict:
    """The run with the median performance score, and every run's performance score."""
    results = sorted((lighthouse(url, desktop=desktop) for _ in range(runs)), key=lambda r: r["performance"])
    return {**results[(len(results) - 1) // 2], "runs": len(results),
            "performance_runs": [r["performance"] for r in results], "tbt_runs_ms": [r["tbt_ms"] for r in results],
            "failed_starts": [f for r in results for f in r["failed_starts"]]}


def first_chart(url: str, runs: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.first_chart", url, "--runs", str(runs)], cwd=ROOT,
                         capture_output=True, text=True, check=True, timeout=600)
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("ttfb")]
    charts = [float(r[r.index("chart") + 1].replace(",", "")) for r in rows]
    kb = [float(r[r.index("total_kb") + 1].replace(",", "")) for r in rows]
    return {"chart_ms_median": statistics.median(charts), "chart_ms_max": max(charts), "runs": len(charts),
            "transfer_kb_median": statistics.median(kb)}


def main() -> None:
    port, redis_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(DATABASE_URL=f"sqlite:///{tmp}/pw.sqlite3", EMBEDDED_REDIS_PORT=str(redis_port), PORT=str(port))
        started = time.monotonic()
        proc = subprocess.Popen(["make", "--no-print-directory", "run", f"PORT={port}"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            while _get(base + "/") != 200:
                if proc.poll() is not None or time.monotonic() - started > 600:
                    raise RuntimeError("make run did not answer within 600 s")
                time.sleep(0.25)
            ready_s = time.monotonic() - started
            time.sleep(5)  # let the first replay ticks land, as a person opening the page a moment later
            result = {"make_run_to_first_page_s": round(ready_s, 1),
                      "first_chart": first_chart(base + PAGES["instrument"], runs=7), "lighthouse": {}}
            for name, path in PAGES.items():
                for form in ("desktop", "mobile"):
                    result["lighthouse"][f"{name} {form}"] = lighthouse_median(base + path, desktop=form == "desktop",
                                                                                runs=LIGHTHOUSE_RUNS)
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
