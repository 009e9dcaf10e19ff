import pytest
from django.conf import settings

from apps.markets.models import Trade
from apps.pressure.models import PressureBar
from apps.replay.models import ReplayStream
from apps.replay.recording import recording_load
from apps.replay.services import replay_advance, replay_streams_ensure

pytestmark = pytest.mark.django_db


def _spi_free_snapshot():
    return list(PressureBar.objects.order_by("instrument__symbol", "instrument__market", "interval", "bucket_start")
                .values_list("interval", "bucket_start", "close", "trades", "taker_sell_base", "spread_bps",
                             "imbalance_1pct"))


def test_replay_feeds_the_recording_shifted_to_now_without_duplicates():
    streams = replay_streams_ensure(history_minutes=20)
    btc = next(s for s in streams if s.name == "binance-spot-btcusdt")
    until = btc.anchor_ms + 20 * 60_000
    inserted = replay_advance(stream_id=btc.pk, until_ms=until, publish=False)
    rec = recording_load(tuple(str(settings.REPLAY_DIR / f) for f in btc.files), settings.BOOK_SAMPLE_INTERVAL_MS,
                         tuple(settings.BOOK_DEPTH_BANDS))
    # 20 minutes cover the 11-minute recording once and most of a second loop.
    assert rec.trade_clock.size == 9_757 + 10_147
    full_loops, rest = divmod(20 * 60_000, rec.period_ms)
    expected = full_loops * rec.trade_clock.size + int((rec.trade_clock <= rest).sum())
    assert inserted == expected == Trade.objects.filter(instrument=btc.instrument).count()
    newest = Trade.objects.filter(instrument=btc.instrument).order_by("-time_ms").first()
    assert until - 60_000 < newest.time_ms <= until
    # Advancing again to the same time, or re-running the window, adds nothing.
    assert replay_advance(stream_id=btc.pk, until_ms=until, publish=False) == 0
    ReplayStream.objects.filter(pk=btc.pk).update(clock_ms=-1)
    assert replay_advance(stream_id=btc.pk, until_ms=until, publish=False) == 0
    assert Trade.objects.filter(instrument=btc.instrument).count() == expected
    assert btc.instrument.exchange.is_replay


def test_replay_is_deterministic():
    streams = replay_streams_ensure(history_minutes=8)
    eth = next(s for s in streams if s.name == "binance-spot-ethusdt")
    replay_advance(stream_id=eth.pk, until_ms=eth.anchor_ms + 8 * 60_000, publish=False)
    first = _spi_free_snapshot()
    PressureBar.objects.all().delete()
    Trade.objects.all().delete()
    ReplayStream.objects.filter(pk=eth.pk).update(clock_ms=-1)
    replay_advance(stream_id=eth.pk, until_ms=eth.anchor_ms + 8 * 60_000, publish=False)
    assert first == _spi_free_snapshot()
    assert any(row[5] is not None for row in first), "book samples should give spreads"
