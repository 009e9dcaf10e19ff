"""Signals on final bars only: a replay of the recordings through the live path, every push captured.

0 alerts, episode starts or regime changes that the final bar does not confirm; the headline of every live
frame is the latest final bar of that frame, and the forming bar never starts anything.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.db.models import Max

from apps.accounts.models import User
from apps.alerts import services as alert_services
from apps.alerts.models import AlertEvent, AlertRule
from apps.live import publish
from apps.markets.models import BookSample, Trade
from apps.pressure.indicators.index import regime_of
from apps.pressure.models import Episode, PressureBar, RegimeCalibration
from apps.pressure.signals import bars_finalized
from apps.replay.services import replay_advance, replay_streams_ensure
from pressureweb.lib.times import dt_to_ms

pytestmark = pytest.mark.django_db


@pytest.fixture
def frames(monkeypatch):
    sent = []
    monkeypatch.setattr(publish, "bars_payload_send",
                        lambda *, instrument_id, payload, headline=None, **_: sent.append((payload, headline)))
    return sent


def _thresholds(bar):
    day = bar.bucket_start.replace(hour=0, minute=0, second=0, microsecond=0)
    return RegimeCalibration.objects.get(instrument=bar.instrument, interval=bar.interval, day=day).thresholds


def test_a_replay_through_the_live_path_signals_only_on_final_bars(settings, frames,
                                                                  django_capture_on_commit_callbacks):
    settings.SPI_MIN_PERIODS = 10
    # Low thresholds and short confirmation, so 40 replayed minutes hold alerts and episodes to check.
    settings.SPI_REGIME_THRESHOLDS = (45.0, 55.0, 70.0)
    settings.EPISODE_CONFIRM_MINUTES, settings.EPISODE_END_MINUTES = 2, 2
    btc = next(s for s in replay_streams_ensure(history_minutes=40) if s.name == "binance-spot-btcusdt")
    user = User.objects.create_user(username="ann", email="ann@example.com", password="x" * 12)
    rules = [AlertRule.objects.create(user=user, scope="instrument", instrument=btc.instrument, metric=metric,
                                      threshold=threshold, rearm_level=rearm, cooldown=timedelta(0),
                                      deliver_email=False)
             for metric, threshold, rearm in (("spi", 55.0, 50.0), ("episode_start", 1.0, 0.5))]
    # Alert evaluation in this process, on every final bar, as the worker would do it.
    bars_finalized.connect(evaluate := lambda sender, instrument, finalized, **kw: alert_services.alert_rules_evaluate(
        instrument_id=instrument.pk), weak=False)
    try:
        for seconds in range(15, 40 * 60 + 1, 15):  # live-sized steps: the forming bar's index moves many times
            with django_capture_on_commit_callbacks(execute=True):  # what runs after each batch commits
                replay_advance(stream_id=btc.pk, until_ms=btc.anchor_ms + seconds * 1000, publish=True)
    finally:
        bars_finalized.disconnect(evaluate)

    bars = {b.bucket_start: b for b in PressureBar.objects.filter(instrument=btc.instrument, interval="1m")}
    final = [b for b in bars.values() if b.final]
    # Not final: the forming bar, and the one before it when the feed's clock (its newest event) is still within
    # the grace for late trades after the minute ended.
    clock = _feed_clock(btc.instrument)
    for bar in bars.values():
        assert bar.final == _due_final(bar, clock, settings), bar
    assert len(final) >= 35 and 1 <= sum(not b.final for b in bars.values()) <= 2
    # Regimes: every final bar's regime is its final index against the thresholds of its day.
    for bar in final:
        if bar.spi is not None:
            assert bar.regime == regime_of(bar.spi, thresholds=_thresholds(bar)), bar
    # Alerts: each confirmed by a final bar at or above the threshold, with that bar's final value.
    spi_events = AlertEvent.objects.filter(rule=rules[0])
    assert spi_events.exists(), "the replay should cross 55"
    for event in spi_events:
        bar = bars[event.bucket_start]
        assert bar.final and event.value == bar.spi and bar.spi >= 55.0
    # Episodes: confirmed on a final bar in high, started on a final bar; their alerts name that bar.
    episodes = list(Episode.objects.filter(instrument=btc.instrument, interval="1m"))
    assert episodes, "the replay should hold an episode"
    for episode in episodes:
        confirmed = bars[episode.confirmed_at]
        assert bars[episode.start].final and confirmed.final
        assert confirmed.spi >= _thresholds(confirmed)[1]
    episode_events = AlertEvent.objects.filter(rule=rules[1])
    assert {e.bucket_start for e in episode_events} <= {e.confirmed_at for e in episodes}
    assert episode_events.count() >= 1
    # Live frames: the headline rides with final bars and agrees with the last final bar of its frame.
    headlines = 0
    for payload, headline in frames:
        for interval, shown in (headline or {}).items():
            finals = [b for b in payload[interval] if b["final"] and b["spi"] is not None]
            if not finals:  # bars still without an index became final: the headline stays on an older bar
                assert shown["bucket_start"] < min(b["bucket_start"] for b in payload[interval])
                continue
            last = max(finals, key=lambda b: b["bucket_start"])
            assert (shown["bucket_start"], shown["spi"], shown["regime"]) == (last["bucket_start"], last["spi"],
                                                                            last["regime"])
            headlines += 1
        # Forming bars in a frame are marked so; a frame never calls a bar final before its data is complete.
        for bar in payload.get("1m", []):
            stored = bars[_dt(bar["bucket_start"])]
            if bar["final"]:
                assert stored.final and np.isclose(bar["spi"] or 0, stored.spi or 0)
    assert headlines >= 25  # a final bar with an index each minute once the window has 10 bars


def _feed_clock(instrument) -> int:
    """The feed's clock: its newest event, trade or book sample."""
    return max(Trade.objects.filter(instrument=instrument).aggregate(m=Max("time_ms"))["m"],
               BookSample.objects.filter(instrument=instrument).aggregate(m=Max("time_ms"))["m"] or 0)


def _due_final(bar, clock: int, settings) -> bool:
    """A 1m bar is final once it has ended and the grace for late trades has passed on the feed's clock."""
    return dt_to_ms(bar.bucket_start) + 60_000 + settings.BAR_FINAL_GRACE_MS <= clock


def _dt(text):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_bar_waits_for_the_feed_clock_not_the_wall_clock(settings):
    """A feed catching up (history replayed at speed, a lagging collector) never finalises a minute it has not
    delivered yet, however far the wall clock is ahead."""
    btc = next(s for s in replay_streams_ensure(history_minutes=10) if s.name == "binance-spot-btcusdt")
    replay_advance(stream_id=btc.pk, until_ms=btc.anchor_ms + 150_000, publish=False)  # 2.5 minutes
    bars = list(PressureBar.objects.filter(instrument=btc.instrument, interval="1m").order_by("bucket_start"))
    # The feed's clock: its newest event (trade or book sample); the wall clock is ~10 minutes ahead of it.
    clock = _feed_clock(btc.instrument)
    for bar in bars:
        assert bar.final == _due_final(bar, clock, settings), (bar.bucket_start, bar.final)
    assert not bars[-1].final
