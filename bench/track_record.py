"""`python -m bench.track_record`: the drop-risk forecast and the track record on real BTCUSDT 5m history.

Reads the 9 months of Binance spot BTCUSDT 5m klines in place (../shared/data/binance-klines-btcusdt-5m,
never copied), fits the forecast walk-forward (monthly refits, each from the bars before it) and
scores it beside the issue's baselines with apps.pressure.track_record. The first 6 months are the
development months, the last 3 the held-out check. Writes nothing; prints the figures and runtimes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from apps.pressure import forecast, track_record

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("KLINES_DIR", ROOT.parent / "shared" / "data" / "binance-klines-btcusdt-5m"))
INTERVAL_MS = 300_000
KLINE_COLUMNS = ["open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "trades",
                 "taker_buy_base", "taker_buy_quote", "ignore"]
DEV_END = "2024-04-01"  # development: 2023-10 .. 2024-03; held out: 2024-04 .. 2024-06


def read_klines(folder: Path) -> pd.DataFrame:
    """data.binance.vision kline CSVs (no header; ms or us open times) -> bars indexed by start in ms."""
    parts = [pd.read_csv(f, header=None, names=KLINE_COLUMNS, comment="o")  # "o": skips a header line
             for f in sorted(folder.glob("*.csv"))]
    raw = pd.concat(parts, ignore_index=True)
    start = raw["open_time"].astype(np.int64)
    start = np.where(start >= 10**15, start // 1000, start)  # microseconds since 2025
    bars = pd.DataFrame({
        "open": raw["open"], "high": raw["high"], "low": raw["low"], "close": raw["close"],
        "volume": raw["volume"], "trades": raw["trades"].astype(np.float64),
        "taker_sell_ratio": ((raw["volume"] - raw["taker_buy_base"]) / raw["volume"]).where(raw["volume"] > 0),
    }).astype(np.float64)
    bars.index = pd.Index(start, name="start_ms")
    return bars[~bars.index.duplicated()].sort_index()


def ms(day: str) -> int:
    return int(pd.Timestamp(day, tz="UTC").value // 1_000_000)


def evaluate(bars: pd.DataFrame, horizon: int, drop: float) -> dict:
    spec = forecast.DropRiskSpec(interval_ms=INTERVAL_MS, horizon_minutes=horizon, drop_pct=drop)
    t0 = time.perf_counter()
    risk, models = forecast.walk_forward(bars, spec=spec)
    fit_s = time.perf_counter() - t0
    frame = bars.join(risk[["drop_risk"]])
    first = min(models)  # the first month with a model; earlier bars have no forecast
    signals = {"drop_risk": track_record.Signal("drop_risk", probability=True, threshold=0.1),
               **{name: track_record.Signal(name) for name in track_record.BASELINES}}
    windows = {"development": (first, ms(DEV_END)), "held-out": (ms(DEV_END), None), "all": (first, None)}
    t1 = time.perf_counter()
    out = {name: track_record.track_record(frame, interval_ms=INTERVAL_MS, horizon_minutes=horizon,
                                           drop_pct=drop, start_ms=a, end_ms=b, signals=signals, curves=True)
           for name, (a, b) in windows.items()}
    return {"results": out, "fit_s": fit_s, "score_s": time.perf_counter() - t1, "models": models}


def show(horizon: int, drop: float, ev: dict) -> None:
    print(f"\nX = {drop:g}%, H = {horizon} min  (walk-forward fits {ev['fit_s']:.1f} s, "
          f"track record {ev['score_s']:.1f} s, {len(ev['models'])} models)")
    for window, res in ev["results"].items():
        s = res["signals"]
        print(f"  {window:12s} bars {res['bars']:6d}  events {res['events']:5d}  base rate {res['base_rate']:.4f}")
        for name in ("drop_risk", *track_record.BASELINES):
            m = s[name]
            extra = (f"  Brier {m['brier']:.5f}  skill {m['brier_skill']:+.4f}  precision {m['precision']:.3f}"
                     f"  recall {m['recall']:.3f}  lead {m['lead_time_minutes_median']} min"
                     f"  false alarms/day {m['false_alarms_per_day']:.2f}" if name == "drop_risk" else "")
            print(f"    {name:27s} AUC {m['auc']:.4f}{extra}")


def main() -> None:
    t0 = time.perf_counter()
    bars = read_klines(DATA)
    print(f"{len(bars):,} bars from {DATA} ({time.perf_counter() - t0:.1f} s to read), "
          f"{pd.Timestamp(bars.index[0], unit='ms')} .. {pd.Timestamp(bars.index[-1], unit='ms')} UTC")
    horizons = [int(h) for h in sys.argv[1:]] or [15, 5, 60]
    for horizon in horizons:
        ev = evaluate(bars, horizon, 1.0)
        show(horizon, 1.0, ev)
        if horizon == 15:
            print("  reliability (held-out, drop_risk):")
            for row in ev["results"]["held-out"]["curves"]["drop_risk"]["reliability"]:
                print(f"    predicted {row['mean_predicted']:.4f}  observed {row['observed_frequency']:.4f}"
                      f"  n {row['count']}")
            last = ev["models"][max(ev["models"])]
            print(f"  last model {last.version}: {last.train_bars} bars, {last.train_events} events, "
                  f"{len(last.to_json())} bytes of JSON")
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
