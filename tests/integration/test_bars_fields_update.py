"""bars_fields_update writes exactly the given fields of exactly the given bars, by row or staged in bulk."""

import pytest

from apps.markets.services import instrument_ensure
from apps.pressure.models import PressureBar
from apps.pressure.services.index import SPI_FIELDS, bars_fields_update
from pressureweb.lib.times import dt_to_ms, ms_to_dt

pytestmark = pytest.mark.django_db

T0 = 1_717_200_000_000


@pytest.mark.parametrize("count", [7, 1_500])  # one UPDATE per bar; staged and joined
def test_the_given_fields_of_the_given_bars_change_and_nothing_else(count):
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    other = instrument_ensure(exchange_slug="binance", market="usdm", symbol="BTCUSDT", base="BTC", quote="USDT")
    for instrument in (inst, other):
        PressureBar.objects.bulk_create([
            PressureBar(instrument=instrument, interval="1m", bucket_start=ms_to_dt(T0 + i * 60_000), spi=1.0,
                        regime="calm", close="5") for i in range(count + 3)])
    rows = {T0 + i * 60_000: {
        "spi": None if i % 5 == 0 else i / 7, "regime": ["", "elevated", "high"][i % 3],
        "spi_components": {"taker_sell_ratio": {"value": 0.5 + i / 1e6, "z": None}} if i % 2 else {},
        "spi_missing": ["ofi"] if i % 4 == 0 else [],
    } for i in range(count)}
    bars_fields_update(instrument=inst, interval="1m", rows=rows, fields=SPI_FIELDS)
    stored = {dt_to_ms(b.bucket_start): b for b in PressureBar.objects.filter(instrument=inst, interval="1m")}
    for bucket, want in rows.items():
        bar = stored[bucket]
        assert (bar.spi, bar.regime, bar.spi_components, bar.spi_missing) == (
            want["spi"], want["regime"], want["spi_components"], want["spi_missing"])
        assert str(bar.close) == "5.0000000000"
    untouched = [stored[T0 + i * 60_000] for i in range(count, count + 3)]
    untouched += list(PressureBar.objects.filter(instrument=other))
    assert all((b.spi, b.regime, b.spi_components) == (1.0, "calm", {}) for b in untouched)
