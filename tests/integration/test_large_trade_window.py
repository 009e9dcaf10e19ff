"""The live path's copy of an instrument's newest trade sizes (the large-trade window): used while it is
right, never after the stored trades changed under it (a late trade from another writer, pruning)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.markets.models import Instrument
from apps.markets.services import instrument_ensure, raw_data_prune
from apps.markets.validation import TradeRow
from apps.pressure.models import PressureBar
from apps.pressure.services import market_batch_ingest
from apps.pressure.services import minutes as minute_service
from pressureweb.lib.times import ms_to_dt

pytestmark = pytest.mark.django_db

T0 = 1_717_200_000_000  # a minute boundary


@pytest.fixture
def inst(settings):
    # A trade is large when it reaches the median of the 4 trades before it.
    settings.SPI_LARGE_TRADES = {"quantile": 0.5, "window": 4, "min_trades": 1}
    minute_service._recent_sizes.clear()
    return instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")


def _ingest(inst, trades, django_capture_on_commit_callbacks):
    rows = [TradeRow(trade_id, T0 + ms, "100", qty, sell) for trade_id, ms, qty, sell in trades]
    with django_capture_on_commit_callbacks(execute=True):
        market_batch_ingest(instrument=Instrument.objects.get(pk=inst.pk), trades=rows, source="test", publish=False)


def _minute(inst, minute: int) -> PressureBar:
    return PressureBar.objects.get(instrument=inst, interval="1m", bucket_start=ms_to_dt(T0 + minute * 60_000))


def _qty_reads(ctx) -> int:
    """Reads of the sizes before a batch from the database."""
    return sum("CAST(qty AS REAL)" in q["sql"] or "qty::float8" in q["sql"] for q in ctx.captured_queries)


def test_appended_batches_use_the_window_copy_and_match_a_full_recompute(inst, django_capture_on_commit_callbacks):
    _ingest(inst, [(1, 1_000, "1", False), (2, 2_000, "1", False), (3, 3_000, "1", False)],
            django_capture_on_commit_callbacks)
    with CaptureQueriesContext(connection) as ctx:
        _ingest(inst, [(4, 4_000, "1", False), (5, 5_000, "5", True)], django_capture_on_commit_callbacks)
    assert _qty_reads(ctx) == 0  # the sizes before the batch came from this process's copy
    bar = _minute(inst, 0)
    # Trades 2..5 reach the median of the trades before them (all 1): 1 + 1 + 1 + 5 large, 5 of it sold.
    assert (bar.large_trade_base, bar.large_trade_sell_base) == (8.0, 5.0)
    rebuilt = minute_service.minute_bars_compute(instrument=inst, start_ms=T0, end_ms=T0 + 60_000)
    assert (rebuilt[0]["large_trade_base"], rebuilt[0]["large_trade_sell_base"]) == (8.0, 5.0)


def test_a_late_trade_from_another_writer_makes_the_copy_stale(inst, django_capture_on_commit_callbacks):
    _ingest(inst, [(1, 1_000, "1", False), (2, 2_000, "1", False), (3, 3_000, "1", False),
                   (4, 4_000, "1", False)], django_capture_on_commit_callbacks)
    # Late trades (as from another process): this process's copy (sizes 1, 1, 1, 1) no longer holds, though
    # the newest trade it was taken at is still the newest.
    _ingest(inst, [(10, 3_500, "9", False), (11, 3_600, "9", False)], django_capture_on_commit_callbacks)
    with CaptureQueriesContext(connection) as ctx:
        _ingest(inst, [(20, 61_000, "2", True)], django_capture_on_commit_callbacks)
    assert _qty_reads(ctx) == 1
    # The 4 trades before it are 1, 9, 9, 1 (by time): median 5, so the size-2 sell is not large.
    assert _minute(inst, 1).large_trade_base == 0.0


def test_pruning_makes_the_copy_stale(inst, django_capture_on_commit_callbacks):
    _ingest(inst, [(1, 1_000, "9", False), (2, 2_000, "9", False), (3, 3_000, "1", False)],
            django_capture_on_commit_callbacks)
    raw_data_prune(older_than_ms=T0 + 2_500)
    with CaptureQueriesContext(connection) as ctx:
        _ingest(inst, [(4, 61_000, "2", True)], django_capture_on_commit_callbacks)
    assert _qty_reads(ctx) == 1
    # Only the size-1 trade is left before it: the size-2 sell is large.
    assert _minute(inst, 1).large_trade_sell_base == 2.0
