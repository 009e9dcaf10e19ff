"""History to the track record, end to end on real data: import_klines -> the index -> evaluate_spi -> the API and page.

The events and the baselines the API reports must equal an independent computation from the CSV text (loops and
ranks here, not the project's track-record math).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest
from django.core.management import call_command
from scipy.stats import rankdata

from apps.pressure.models import ForecastModel, PressureBar, TrackRecord
from tests.recordings import kline_rows

pytestmark = pytest.mark.django_db

MONTHS = ("2023-10", "2023-11", "2023-12")
FIVE_MIN = 300_000
PARAMS = {"exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "interval": "5m"}


def _auc(y: list[bool], score: list[float]) -> float:
    """Mann-Whitney U / (n1 n0), ties counting half, from average ranks."""
    ranks = rankdata(score)
    positives = [r for r, event in zip(ranks, y, strict=True) if event]
    n1, n0 = len(positives), len(y) - len(positives)
    return (sum(positives) - n1 * (n1 + 1) / 2) / (n1 * n0)


def _by_hand(rows, start_ms, end_ms, horizon=15, drop=1.0):
    bars = {int(r[0]): (Decimal(r[2]), Decimal(r[3]), Decimal(r[4]), Decimal(r[5]), Decimal(r[9])) for r in rows}
    starts = sorted(bars)
    steps = horizon * 60_000 // FIVE_MIN
    events, volatility, returns = [], [], []
    for t in starts:
        if not start_ms <= t < end_ms or t + horizon * 60_000 not in bars:
            continue
        close = bars[t][2]
        lowest = min(bars[t + k * FIVE_MIN][1] for k in range(1, steps + 1) if t + k * FIVE_MIN in bars)
        events.append(lowest <= close * (1 - Decimal(drop) / 100))
        back = [t - k * FIVE_MIN for k in range(13)]  # the 12 returns of the 60 minutes ending at t's close
        volatility.append(sum(abs(math.log(bars[back[k]][2] / bars[back[k + 1]][2])) for k in range(12)) / 12
                          if all(b in bars for b in back) else None)
        returns.append(-math.log(close / bars[t - horizon * 60_000][2]) if t - horizon * 60_000 in bars else None)
    return events, volatility, returns


def test_imported_history_gets_an_index_a_forecast_and_an_honest_track_record(shared_data, client):
    paths = [shared_data / "binance-klines-btcusdt-5m" / f"BTCUSDT-5m-{m}.csv" for m in MONTHS]
    call_command("import_klines", *map(str, paths), "--symbol", "BTCUSDT", "--interval", "5m")
    bars = PressureBar.objects.filter(interval="5m", source="klines")
    assert bars.count() == (31 + 30 + 31) * 288 and not bars.filter(final=False).exists()
    # The index on history that exists only at 5m: taker flow components, no book ones.
    latest = bars.exclude(spi=None).order_by("-bucket_start").first()
    assert latest.regime and "taker_sell_ratio" in latest.spi_components and "imbalance" in latest.spi_missing

    call_command("evaluate_spi", "--interval", "5m")
    # Walk-forward: October alone is too short for a fit, the December model learns from October and November.
    dec = datetime(2023, 12, 1, tzinfo=UTC)
    assert list(ForecastModel.objects.filter(interval="5m", horizon_minutes=15).values_list("train_end", flat=True)) \
        == [dec]
    assert not bars.filter(bucket_start__lt=dec).exclude(drop_risk=None).exists()  # nothing before a model
    assert bars.filter(bucket_start__gte=dec).exclude(drop_risk=None).count() > 8000
    assert TrackRecord.objects.filter(horizon_minutes__in=[5, 15, 60]).count() == 3

    start, end = "2023-12-01T00:00:00Z", "2024-01-01T00:00:00Z"
    body = client.get("/api/v1/track-record", {**PARAMS, "start": start, "end": end}).json()
    rows = [r for p in paths for r in kline_rows(p)]
    events, volatility, returns = _by_hand(rows, 1_701_388_800_000, 1_704_067_200_000)
    assert body["bars"] == len(events) and body["events"] == sum(events) > 20
    assert body["base_rate"] == pytest.approx(sum(events) / len(events))
    signals = body["signals"]
    for name, score in (("baseline_volatility", volatility), ("baseline_return", returns)):
        scored = [(e, s) for e, s in zip(events, score, strict=True) if s is not None]
        assert signals[name]["auc"] == pytest.approx(_auc(*zip(*scored, strict=True)), abs=1e-9), name
    assert signals["drop_risk"]["auc"] > signals["baseline_taker_sell_ratio"]["auc"]
    assert -1 < signals["drop_risk"]["brier_skill"] < 1 and signals["spi"]["brier"] is None
    assert set(signals) >= {"spi", "drop_risk", "regime_elevated", "regime_high", "regime_extreme",
                            "baseline_taker_sell_ratio", "baseline_volatility", "baseline_return"}

    csv_text = client.get("/api/v1/track-record", {**PARAMS, "start": start, "end": end, "format": "csv"}).content
    assert csv_text.decode().splitlines()[0].startswith("signal,auc,brier,brier_skill")
    assert client.get("/api/v1/track-record", {**PARAMS, "horizon_minutes": 7}).status_code == 400

    # 1h bars (rolled up from the 5m klines): 15 minutes is no whole number of bars, so the forecast and its
    # track record use one bar, 60 minutes, and the headline says so.
    call_command("evaluate_spi", "--interval", "1h")
    assert list(TrackRecord.objects.filter(interval="1h").values_list("horizon_minutes", flat=True)) == [60]
    from apps.pressure.selectors import index_headline

    assert index_headline(instrument=latest.instrument, interval="1h")["drop_risk_horizon_minutes"] == 60

    page = client.get("/track-record/").content.decode()
    assert 'id="roc-figure"' in page and 'id="reliability-figure"' in page and 'data-signal="drop_risk"' in page
    # The figures are drawn by figures.js with Plotly, which must load before it.
    assert -1 < page.find("vendor/plotly/plotly-custom") < page.find("js/figures.js")
    assert "needs-more-history" not in page


def test_a_short_history_says_how_many_more_days_it_needs(client, settings):
    from apps.pressure.services import track_record_refresh
    from apps.replay.services import replay_advance, replay_streams_ensure

    btc = next(s for s in replay_streams_ensure(history_minutes=20) if s.name == "binance-spot-btcusdt")
    replay_advance(stream_id=btc.pk, until_ms=btc.anchor_ms + 20 * 60_000, publish=False)
    record = track_record_refresh(instrument=btc.instrument, interval="1m")
    assert record.result["signals"]["drop_risk"]["auc"] is None  # no model: too little history
    page = client.get("/track-record/").content.decode()
    assert 'id="needs-more-history"' in page and "29 more days" in page
    assert np.isfinite(record.result["history_days"])
