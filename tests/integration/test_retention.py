import pytest

from apps.markets.models import BookSample, Trade
from apps.markets.services import instrument_ensure, raw_data_prune
from apps.markets.validation import TradeRow
from apps.pressure.models import PressureBar
from apps.pressure.services import market_batch_ingest
from tests.recordings import raw_trades

pytestmark = pytest.mark.django_db


def test_pruning_removes_old_raw_rows_and_keeps_every_bar():
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    trades = [TradeRow(*t) for t in raw_trades("spot_btcusdt_20240808.gz")]
    market_batch_ingest(instrument=inst, trades=trades, source="test", publish=False)
    cutoff = trades[len(trades) // 2].time_ms
    bars_before = list(PressureBar.objects.order_by("interval", "bucket_start").values())
    older = Trade.objects.filter(time_ms__lt=cutoff).count()
    assert older > 1000
    deleted = raw_data_prune(older_than_ms=cutoff, batch=700)
    assert deleted["trades"] == older
    assert not Trade.objects.filter(time_ms__lt=cutoff).exists()
    assert Trade.objects.count() == len(trades) - older
    assert not BookSample.objects.filter(time_ms__lt=cutoff).exists()
    assert list(PressureBar.objects.order_by("interval", "bucket_start").values()) == bars_before
