import pytest
from django.conf import settings

from apps.markets.models import Trade
from apps.pressure.models import PressureBar
from apps.replay.models import ReplayStream
from apps.replay.recording import recording_load
from apps.replay.services import replay_advance, replay_streams_ensure

pytestmark = pytest.mark.django_db


def _snapshot():
    return list(PressureBar.objects.order_by("instrument__symbol", "instrument__market", "interval", "bucket_start")
                .values_list("interval", "bucket_start", "close", "trades", "taker_sell_base", "spread_bps",
                             "imbalance_1pct", "ofi", "large_trade_sell_share", "spi", "regime", "spi_components"))


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


def test_replay_is_deterministic_including_the_spi(settings):
    settings.SPI_MIN_PERIODS = 10  # so 40 replayed minutes produce an index to compare
    streams = replay_streams_ensure(history_minutes=40)
    eth = next(s for s in streams if s.name == "binance-spot-ethusdt")
    replay_advance(stream_id=eth.pk, until_ms=eth.anchor_ms + 40 * 60_000, publish=False)
    first = _snapshot()
    PressureBar.objects.all().delete()
    Trade.objects.all().delete()
    ReplayStream.objects.filter(pk=eth.pk).update(clock_ms=-1)
    replay_advance(stream_id=eth.pk, until_ms=eth.anchor_ms + 40 * 60_000, publish=False)
    assert first == _snapshot()
    assert any(row[5] is not None for row in first), "book samples should give spreads"
    assert sum(row[9] is not None for row in first) >= 20, "the SPI should be defined after the warm-up"


def test_spi_stored_batch_by_batch_equals_a_from_scratch_computation(settings):
    import pandas as pd

    from apps.pressure import spi as spi_math
    from apps.pressure.services.index import _bars_frame

    settings.SPI_MIN_PERIODS = 10
    streams = replay_streams_ensure(history_minutes=40)
    btc = next(s for s in streams if s.name == "binance-spot-btcusdt")
    # Small steps, as live ticks would deliver them.
    for minute in range(1, 41, 3):
        replay_advance(stream_id=btc.pk, until_ms=btc.anchor_ms + minute * 60_000, publish=False)
    bars = PressureBar.objects.filter(instrument=btc.instrument, interval="1m").order_by("bucket_start")
    frame = _bars_frame(instrument=btc.instrument, interval="1m", start_ms=0, end_ms=btc.anchor_ms + 41 * 60_000)
    scratch = {r["bucket_ms"]: r for r in spi_math.spi_rows(frame, last=len(frame))}
    compared = 0
    for bar in bars:
        row = scratch[int(bar.bucket_start.timestamp() * 1000)]
        if row["spi"] is None:
            assert bar.spi is None
            continue
        compared += 1
        assert bar.spi == pytest.approx(row["spi"], rel=1e-9)
        assert bar.regime == row["regime"]
        for name, c in bar.spi_components.items():
            want = row["components"][name]["contribution"]
            if want is None:
                assert c["contribution"] is None, name
            else:
                assert c["contribution"] == pytest.approx(want, rel=1e-9, abs=1e-12), name
    assert compared >= 20
    assert pd.notna(frame["ofi"]).sum() > 30 and pd.notna(frame["large_trade_sell_share"]).sum() > 10


def test_load_replay_command_backfills_history_with_progress(capsys):
    from django.core.management import call_command

    call_command("load_replay", "--history", "3")
    out = capsys.readouterr().out
    assert "3 replay streams ready" in out
    assert Trade.objects.values("instrument").distinct().count() == 3
    assert PressureBar.objects.filter(interval="1m").count() >= 6
    # Running it again changes nothing: the streams keep their anchor and clock.
    before = Trade.objects.count()
    call_command("load_replay", "--history", "3")
    assert Trade.objects.count() >= before
    assert ReplayStream.objects.count() == 3


def test_spot_and_perp_of_one_market_feed_the_spot_perp_divergence(settings):
    settings.SPI_MIN_PERIODS = 5
    streams = {s.name: s for s in replay_streams_ensure(history_minutes=15)}
    spot, perp = streams["binance-spot-btcusdt"], streams["binance-usdm-btcusdt"]
    # Spot first, then perp, then the spot's last minute: its refresh also redoes the bars just before.
    for stream, minutes in ((spot, 14), (perp, 15), (spot, 15)):
        replay_advance(stream_id=stream.pk, until_ms=stream.anchor_ms + minutes * 60_000, publish=False)
    perp_ratio = dict(PressureBar.objects.filter(instrument=perp.instrument, interval="1m")
                      .values_list("bucket_start", "taker_sell_ratio"))
    checked = 0
    for bar in PressureBar.objects.filter(instrument=spot.instrument, interval="1m"):
        component = bar.spi_components.get("spot_perp_divergence")
        if component and bar.bucket_start in perp_ratio and perp_ratio[bar.bucket_start] is not None:
            assert component["value"] == pytest.approx(perp_ratio[bar.bucket_start] - bar.taker_sell_ratio)
            checked += 1
    assert checked >= 2


def test_episodes_match_a_detection_over_the_final_series(settings):
    import pandas as pd

    from apps.pressure.indicators.episodes import detect_episodes
    from apps.pressure.models import Episode

    settings.SPI_MIN_PERIODS = 10
    # Low thresholds and short confirmation, so 50 replayed minutes hold episodes to compare.
    settings.SPI_REGIME_THRESHOLDS = (45.0, 55.0, 80.0)
    settings.EPISODE_CONFIRM_MINUTES, settings.EPISODE_END_MINUTES = 2, 3
    streams = replay_streams_ensure(history_minutes=50)
    btc = next(s for s in streams if s.name == "binance-spot-btcusdt")
    for seconds in range(20, 50 * 60 + 1, 20):  # live-sized steps: the open bar's SPI moves many times
        replay_advance(stream_id=btc.pk, until_ms=btc.anchor_ms + seconds * 1000, publish=False)
    bars = list(PressureBar.objects.filter(instrument=btc.instrument, interval="1m", final=True)
                .order_by("bucket_start"))
    spi = pd.Series([b.spi if b.spi is not None else float("nan") for b in bars],
                    index=[int(b.bucket_start.timestamp() * 1000) for b in bars])
    close = pd.Series([float(b.close) for b in bars], index=spi.index)
    contribution = pd.DataFrame([{k: v.get("contribution") for k, v in (b.spi_components or {}).items()}
                                 for b in bars], index=spi.index, dtype=float)
    # Every field, not only the bounds: the stored rows are rewritten only when one of them changes.
    want = [(e.start, e.confirmed, e.end, e.peak_time, e.peak_spi, e.bars, e.source,
             {k: float(v) for k, v in e.shares.items()})
            for e in detect_episodes(spi, contribution=contribution, close=close, enter=55.0, exit=45.0, confirm=2,
                                     persist=3)]
    ms = lambda t: int(t.timestamp() * 1000) if t else None  # noqa: E731
    got = [(ms(e.start), ms(e.confirmed_at), ms(e.end), ms(e.peak_time), e.peak_spi, e.bars, e.source, e.shares)
           for e in Episode.objects.filter(instrument=btc.instrument, interval="1m").order_by("start")]
    assert got == want
    assert want and any(e.bars > 1 for e in Episode.objects.filter(instrument=btc.instrument))
    assert Episode.objects.filter(instrument=btc.instrument, end=None).count() <= 1
    # Only final bars count: the forming bar never starts an episode.
    forming = PressureBar.objects.filter(instrument=btc.instrument, interval="1m", final=False)
    assert not Episode.objects.filter(start__in=forming.values("bucket_start")).exists()


def test_bars_grown_batch_by_batch_equal_a_recomputation_from_every_trade(settings):
    """Live batches only add their own trades to the stored bar of the open minute; the result must
    be what a recomputation from all stored trades and book samples gives, field by field."""
    from decimal import Decimal

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.pressure.services import BAR_FIELDS, minute_bars_compute

    streams = replay_streams_ensure(history_minutes=0)
    eth = next(s for s in streams if s.name == "binance-spot-ethusdt")
    step_ms = 700  # a few live ticks per second of exchange time, crossing minute boundaries
    reads = []
    for until in range(step_ms, 4 * 60_000, step_ms):
        with CaptureQueriesContext(connection) as queries:
            replay_advance(stream_id=eth.pk, until_ms=eth.anchor_ms + until, publish=False)
        reads += [q["sql"] for q in queries.captured_queries if "round(price" in q["sql"]]
    # The open minute's trades are never read back: no per-trade price query ran.
    assert reads == []
    stored = {int(b.bucket_start.timestamp() * 1000): b
              for b in PressureBar.objects.filter(instrument=eth.instrument, interval="1m")}
    scratch = minute_bars_compute(instrument=eth.instrument, start_ms=min(stored), end_ms=max(stored) + 60_000)
    assert [row["bucket_ms"] for row in scratch] == sorted(stored)
    assert sum(row["trades"] for row in scratch) == Trade.objects.filter(instrument=eth.instrument).count() > 1_000
    assert sum(row["book_samples"] for row in scratch) > 100
    large_defined = 0
    for row in scratch:
        bar = stored[row["bucket_ms"]]
        for name in BAR_FIELDS:
            want, got = row[name], getattr(bar, name)
            if isinstance(want, float) and want is not None and got is not None:
                assert got == pytest.approx(want, rel=1e-9, abs=1e-12), name
            elif isinstance(want, Decimal) and got is not None:
                assert Decimal(got) == want, name
            else:
                assert got == want, (row["bucket_ms"], name)
        large_defined += bar.large_trade_sell_share is not None
    assert large_defined >= 1
