"""The database failing mid-batch: nothing half-written, and the retried batch lands exactly once."""

from decimal import Decimal

import pytest
from django.db import OperationalError, connection

from apps.markets.models import BookSample, SourceStatus, Trade
from apps.markets.services import instrument_ensure
from apps.markets.validation import TradeRow
from apps.pressure.models import PressureBar
from apps.pressure.services import market_batch_ingest
from tests.integrity import assert_bars_equal_by_hand, assert_trades_equal
from tests.recordings import raw_trades

pytestmark = pytest.mark.django_db(transaction=True)
RECORDING = "spot_ethusdt_20240808.gz"


class DropAfter:
    """Fail the Nth statement and every one after it, the way a dropped connection does (an execute wrapper at
    the DB edge)."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, execute, sql, params, many, context):
        self.n -= 1
        if self.n <= 0:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)


def _state(inst):
    return (Trade.objects.filter(instrument=inst).count(), BookSample.objects.filter(instrument=inst).count(),
            list(PressureBar.objects.filter(instrument=inst).order_by("interval", "bucket_start")
                 .values_list("interval", "bucket_start", "trades", "taker_sell_base", "spi")),
            list(SourceStatus.objects.values_list("name", "trades_inserted")))


@pytest.mark.parametrize("fail_at", [2, 4, 7, 12, 17, 21])  # the batch runs about 22 statements
def test_a_connection_drop_mid_batch_leaves_nothing_half_written_and_the_retry_lands_whole(fail_at):
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="ETHUSDT", base="ETH", quote="USDT")
    trades = [TradeRow(*t) for t in raw_trades(RECORDING)]
    market_batch_ingest(instrument=inst, trades=trades[:3000], source="test", publish=False)
    before = _state(inst)
    with connection.execute_wrapper(DropAfter(fail_at)), pytest.raises(OperationalError):
        market_batch_ingest(instrument=inst, trades=trades[3000:], source="test", publish=False)
    assert _state(inst) == before
    market_batch_ingest(instrument=inst, trades=trades[3000:], source="test", publish=False)
    assert_trades_equal(inst, [(i, t, Decimal(p), Decimal(q), s) for i, t, p, q, s in raw_trades(RECORDING)])
    assert_bars_equal_by_hand(inst)


def test_the_replay_task_retries_database_errors_with_backoff():
    from apps.replay.tasks import replay_tick

    assert OperationalError in replay_tick.autoretry_for
    assert replay_tick.retry_backoff and replay_tick.max_retries >= 3
