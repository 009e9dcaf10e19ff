"""Calibrated regime thresholds: per UTC day, the 80th/95th/99th percentiles of the instrument's final index
values of the 30 days before that day (walk-forward), stored on first use; defaults while too few exist."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from apps.markets.services import instrument_ensure
from apps.pressure.models import PressureBar, RegimeCalibration
from apps.pressure.services import regime_calibration_get
from apps.pressure.services.index import regime_calibrations_ensure
from pressureweb.lib.times import ms_to_dt

pytestmark = pytest.mark.django_db

DAY = 86_400_000
HOUR = 3_600_000
START = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def history(settings):
    """40 days of final 1h bars with index values, the values as the test knows them."""
    settings.SPI_REGIME_MIN_BARS = 100
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    rng = np.random.default_rng(7)
    times = np.arange(START, START + 40 * DAY, HOUR)
    values = rng.uniform(0, 100, len(times)).round(6)
    values[rng.random(len(times)) < 0.1] = np.nan  # bars without an index
    PressureBar.objects.bulk_create([
        PressureBar(instrument=inst, interval="1h", bucket_start=ms_to_dt(int(t)), final=True,
                    spi=None if np.isnan(v) else float(v)) for t, v in zip(times, values, strict=True)])
    return inst, pd.Series(values, index=times)


def _percentiles(series: pd.Series, day: int) -> tuple[float, ...]:
    window = series[(series.index >= day - 30 * DAY) & (series.index < day)].dropna().to_numpy()
    return tuple(np.percentile(window, [80, 95, 99]))


def test_each_day_gets_the_percentiles_of_the_thirty_days_before_it(history):
    inst, series = history
    days = [START + d * DAY for d in (1, 4, 20, 30, 31, 39)]
    got = regime_calibrations_ensure(instrument=inst, interval="1h", days_ms=days)
    for day in days:
        stored = RegimeCalibration.objects.get(instrument=inst, interval="1h", day=ms_to_dt(day))
        assert got[day].thresholds == stored.thresholds
        count = int(series[(series.index >= day - 30 * DAY) & (series.index < day)].notna().sum())
        if count < 100:  # the first days: too little history
            assert (stored.thresholds, stored.is_default, stored.bars) == ((64.0, 74.0, 82.0), True, 0)
        else:
            assert stored.thresholds == pytest.approx(_percentiles(series, day), rel=1e-12)
            assert (stored.is_default, stored.bars) == (False, count)


def test_a_stored_day_is_kept_and_fresh_values_replace_stored_ones(history):
    inst, series = history
    day = START + 35 * DAY
    # A backfill's new index values from day 20 on, not written yet.
    fresh = (series[series.index >= START + 20 * DAY] / 2).dropna()
    got = regime_calibration_get(instrument=inst, interval="1h", day_ms=day, fresh=fresh)
    mixed = pd.concat([series[series.index < START + 20 * DAY], fresh])
    assert got.thresholds == pytest.approx(_percentiles(mixed, day), rel=1e-12)
    # Asked again (with or without fresh values), the stored thresholds of the day stand.
    assert regime_calibration_get(instrument=inst, interval="1h", day_ms=day).thresholds == got.thresholds
    assert RegimeCalibration.objects.filter(instrument=inst, interval="1h").count() == 1
