from decimal import Decimal

import pytest

from apps.markets.models import BookSample, Trade
from apps.markets.services import instrument_ensure, raw_data_prune
from apps.markets.validation import TradeRow
from apps.pressure.models import PressureBar
from apps.pressure.services import market_batch_ingest
from tests.recordings import raw_trades

pytestmark = pytest.mark.django_db
DEPTHS = [f"{side}_depth_{band}" for side in ("bid", "ask") for band in ("0_1pct", "0_5pct", "1pct", "2pct")]


def test_pruning_removes_old_raw_rows_and_keeps_every_bar():
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    trades = [TradeRow(*t) for t in raw_trades("spot_btcusdt_20240808.gz")]
    market_batch_ingest(instrument=inst, trades=trades, source="test", publish=False)
    cutoff = trades[len(trades) // 2].time_ms
    # One book sample a second across the recording, half before the cutoff.
    step = (trades[-1].time_ms - trades[0].time_ms) // 1500 or 1
    BookSample.objects.bulk_create(
        BookSample(instrument=inst, time_ms=t, bid_price=Decimal("61000"), bid_qty=Decimal(1),
                   ask_price=Decimal("61000.1"), ask_qty=Decimal(1), **dict.fromkeys(DEPTHS, 1.0))
        for t in range(trades[0].time_ms, trades[-1].time_ms, step))
    samples_older = BookSample.objects.filter(time_ms__lt=cutoff).count()
    samples_kept = BookSample.objects.count() - samples_older
    assert samples_older > 500 and samples_kept > 500
    bars_before = list(PressureBar.objects.order_by("interval", "bucket_start").values())
    older = Trade.objects.filter(time_ms__lt=cutoff).count()
    assert older > 1000
    deleted = raw_data_prune(older_than_ms=cutoff, batch=700)
    assert deleted["trades"] == older
    assert not Trade.objects.filter(time_ms__lt=cutoff).exists()
    assert Trade.objects.count() == len(trades) - older
    assert deleted["book_samples"] == samples_older
    assert not BookSample.objects.filter(time_ms__lt=cutoff).exists()
    assert BookSample.objects.count() == samples_kept
    assert list(PressureBar.objects.order_by("interval", "bucket_start").values()) == bars_before
