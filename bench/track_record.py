"""`python -m bench.track_record`: the drop-risk forecast and the track record on real BTCUSDT 5m history.

Reads the 9 months of Binance spot BTCUSDT 5m klines in place (../shared/data/binance-klines-btcusdt-5m,
never copied), fits the forecast walk-forward (monthly refits, each from the bars before it) and
scores it beside the issue's baselines with apps.pressure.track_record. The first 6 months are the
development months, the last 3 the held-out check. Writes nothing; prints the figures and runtimes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

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


# The reference recipe: one logistic regression on volatility, range, volume, taker flow and
# return features, refit monthly. Same features, same months, same schedule as the forecast here.
REFERENCE_PREFIXES = ("log_abs_return_", "log_range_", "log_rel_volume_", "taker_sell_ratio", "return_")


def reference_walk_forward(bars: pd.DataFrame, spec: forecast.DropRiskSpec, refits: list[int]) -> np.ndarray:
    table = forecast.features(bars, spec=spec)
    table = table[[c for c in table.columns if c.startswith(REFERENCE_PREFIXES)]]
    ev = track_record.drop_events(bars, interval_ms=spec.interval_ms, horizon_minutes=spec.horizon_minutes,
                                  drop_pct=spec.drop_pct)
    x, y, t = table.to_numpy(), ev["event"].to_numpy(), bars.index.to_numpy()
    known = ~np.isnan(x).any(axis=1)
    usable = known & ev["has_horizon"].to_numpy()
    out = np.full(len(t), np.nan)
    for refit, until in zip(refits, [*refits[1:], t[-1] + 1], strict=True):
        rows = usable & (t + spec.horizon_minutes * 60_000 + spec.interval_ms <= refit)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x[rows], y[rows])
        now = known & (t >= refit) & (t < until)
        out[now] = model.predict_proba(x[now])[:, 1]
    return out


def evaluate(bars: pd.DataFrame, horizon: int, drop: float) -> dict:
    spec = forecast.DropRiskSpec(interval_ms=INTERVAL_MS, horizon_minutes=horizon, drop_pct=drop)
    t0 = time.perf_counter()
    risk, models = forecast.walk_forward(bars, spec=spec)
    fit_s = time.perf_counter() - t0
    frame = bars.join(risk[["drop_risk"]])
    frame["reference_logistic"] = reference_walk_forward(bars, spec, list(models))
    first = min(models)  # the first month with a model; earlier bars have no forecast
    signals = {"drop_risk": track_record.Signal("drop_risk", probability=True, threshold=0.1),
               "reference_logistic": track_record.Signal("reference_logistic", probability=True),
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
        for name in ("drop_risk", "reference_logistic", *track_record.BASELINES):
            m = s[name]
            extra = f"  Brier {m['brier']:.5f}  skill {m['brier_skill']:+.4f}" if "brier" in m else ""
            if "precision" in m:
                extra += (f"\n{'':33s}alerts >= 0.10: precision {m['precision']:.3f} (base rate "
                          f"{res['base_rate']:.4f})  recall {m['recall']:.3f}  median lead "
                          f"{m['lead_time_minutes_median']} min  false alarms {m['false_alarms_per_day']:.2f}/day")
            print(f"    {name:27s} AUC {m['auc']:.4f}{extra}")


def main() -> None:
    t0 = time.perf_counter()
    bars = read_klines(DATA)
    print(f"{len(bars):,} bars from {DATA} ({time.perf_counter() - t0:.1f} s to read), "
          f"{pd.Timestamp(bars.index[0], unit='ms')} .. {pd.Timestamp(bars.index[-1], unit='ms')} UTC")
    horizons = [int(h) for h in sys.argv[1:]] or [15, 5, 60]
    summary: dict = {"bars": len(bars), "horizons": {}}
    for horizon in horizons:
        ev = evaluate(bars, horizon, 1.0)
        show(horizon, 1.0, ev)
        summary["horizons"][str(horizon)] = {
            window: {"bars": res["bars"], "events": res["events"], "base_rate": res["base_rate"],
                     **{f"{name}_{key}": res["signals"][name].get(key) for name in
                        ("drop_risk", "reference_logistic", "baseline_volatility", "baseline_taker_sell_ratio")
                        for key in ("auc", "brier_skill") if key in res["signals"][name]}}
            for window, res in ev["results"].items()}
        if horizon == 15:
            print("  reliability (held-out, drop_risk):")
            for row in ev["results"]["held-out"]["curves"]["drop_risk"]["reliability"]:
                print(f"    predicted {row['mean_predicted']:.4f}  observed {row['observed_frequency']:.4f}"
                      f"  n {row['count']}")
            last = ev["models"][max(ev["models"])]
            print(f"  last model {last.version}: {last.train_bars} bars, {last.train_events} events, "
                  f"{len(last.to_json())} bytes of JSON")
    summary.update(year_timing(bars))
    summary["total_s"] = round(time.perf_counter() - t0, 1)
    print(f"\ntotal {summary['total_s']:.1f} s")
    print(json.dumps(summary))


def year_timing(bars: pd.DataFrame) -> dict:
    """A year of 5m bars: the 9 real months followed by their first 3 months again, re-timed to follow on."""
    first3 = bars.loc[: ms("2024-01-01") - 1]
    shift = ms("2024-07-01") - ms("2023-10-01")
    year = pd.concat([bars, first3.set_axis(first3.index + shift)])
    t0 = time.perf_counter()
    risk, models = forecast.walk_forward(year, spec=forecast.DropRiskSpec(interval_ms=INTERVAL_MS))
    fit_s = time.perf_counter() - t0
    res = track_record.track_record(year.join(risk[["drop_risk"]]), interval_ms=INTERVAL_MS, curves=True)
    total = time.perf_counter() - t0
    print(f"\nwalk-forward track record over a year of 5m bars ({len(year):,} bars, {len(models)} monthly fits, "
          f"{len(res['signals'])} signals with curves): {total:.1f} s (forecast fits and predictions {fit_s:.1f} s)")
    # One final bar's prediction as the live task makes it: the newest bar, 30 days of bars before it.
    model = models[max(models)]
    recent = year.loc[year.index[-1] - forecast.HISTORY_DAYS * 86_400_000:]
    t1 = time.perf_counter()
    for _ in range(20):
        model.predict(recent, last=1)
    return {"year_bars": len(year), "year_fits": len(models), "year_track_record_s": round(total, 1),
            "year_fit_s": round(fit_s, 1), "predict_one_bar_ms": round((time.perf_counter() - t1) / 20 * 1000, 1)}


if __name__ == "__main__":
    main()
