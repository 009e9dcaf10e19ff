"""Alerts end to end: recorded sell-off -> ingestion -> Celery worker evaluation -> real SMTP server."""

import time
from datetime import timedelta
from email.header import decode_header, make_header

import pytest
from allauth.account.models import EmailAddress

from apps.accounts.models import User
from apps.alerts.models import AlertEvent, AlertRule, AlertRuleState
from apps.markets.services import instrument_ensure
from apps.markets.validation import TradeRow
from apps.pressure.services import bars_finalize_due, market_batch_ingest
from tests.recordings import raw_trades

pytestmark = pytest.mark.integration


def _user():
    user = User.objects.create_user(username="erin", email="erin@example.com", password="x" * 12)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def _minutes(name):
    trades = sorted(raw_trades(name), key=lambda t: (t[1], t[0]))
    minutes: dict[int, list] = {}
    for t in trades:
        minutes.setdefault(t[1] - t[1] % 60_000, []).append(TradeRow(*t))
    return [minutes[k] for k in sorted(minutes)]


def _ratio(batch):
    sell = sum(float(t.qty) for t in batch if t.taker_sell)
    return sell / sum(float(t.qty) for t in batch)


def _wait(predicate, timeout=30, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


def test_a_recorded_sell_off_emails_once_then_not_in_cooldown_then_again_after_rearm(stack_factory, smtp_sink,
                                                                                     settings):
    # Rules act on final bars: each recorded minute is made final right after it is fed, as if the market
    # then went quiet (the quiet rule with no wait).
    settings.BAR_FINAL_QUIET_MS = 0
    stack = stack_factory(extra_env={"EMAIL_URL": smtp_sink.url})
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="ETHUSDT", base="ETH", quote="USDT")
    user = _user()
    cooldown = timedelta(seconds=6)
    rule = AlertRule.objects.create(user=user, scope="instrument", instrument=inst, metric="taker_sell_ratio",
                                    comparator="gte", threshold=0.65, rearm_level=0.45, cooldown=cooldown)
    minutes = _minutes("spot_ethusdt_20240808.gz")
    ratios = [_ratio(m) for m in minutes]
    # The recording: a sell-off minute, two calm ones, another sell-off, calm, and a third sell-off.
    assert [r >= 0.65 for r in ratios[:6]] == [True, False, False, True, False, True]
    assert all(r < 0.45 for r in (ratios[1], ratios[4]))

    def feed(i):
        market_batch_ingest(instrument=inst, trades=minutes[i], source="test")
        bars_finalize_due(instrument=inst)
        _wait(lambda: AlertRuleState.objects.filter(rule=rule, last_value__gt=ratios[i] - 1e-9,
                                                    last_value__lt=ratios[i] + 1e-9).exists(),
              message=f"evaluation of minute {i}\n{stack.logs()}")

    feed(0)
    first = smtp_sink.wait_for(1)
    assert len(first) == 1
    subject = str(make_header(decode_header(first[0]["Subject"])))
    assert subject == "[PressureWeb] ETHUSDT spot \u00b7 Binance: taker sell ratio 70% (rises to or above 65%)"
    assert first[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/alerts/unsubscribe/" in first[0]["List-Unsubscribe"]
    fired_at = AlertRuleState.objects.get(rule=rule).last_fired_at
    for i in (1, 2, 3):  # re-armed at minute 1, crosses again at minute 3: still cooling down
        feed(i)
    assert AlertRuleState.objects.get(rule=rule).armed
    assert len(smtp_sink.messages) == 1, "no email during the cooldown"
    remaining = (fired_at + cooldown) - AlertEvent.objects.get().created_at + timedelta(seconds=0.5)
    time.sleep(max(0.0, remaining.total_seconds()))
    feed(4)
    feed(5)
    assert len(smtp_sink.wait_for(2)) == 2
    events = list(AlertEvent.objects.order_by("bucket_start"))
    assert [e.email_status for e in events] == ["sent", "sent"]
    assert [round(e.value, 6) for e in events] == [round(ratios[0], 6), round(ratios[5], 6)]
    body = smtp_sink.messages[1].get_payload()[0].get_payload(decode=True).decode()
    assert "/markets/binance/spot/ETHUSDT/" in body and "/glossary/taker-sell-ratio/" in body


def test_two_workers_racing_on_the_same_events_send_each_email_once(stack_factory, smtp_sink):
    from apps.alerts.tasks import alert_event_deliver

    stack = stack_factory(workers=2, extra_env={"EMAIL_URL": smtp_sink.url})
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="ETHUSDT", base="ETH", quote="USDT")
    rule = AlertRule.objects.create(user=_user(), scope="instrument", instrument=inst, metric="taker_sell_ratio",
                                    threshold=0.6)
    events = [AlertEvent.objects.create(rule=rule, instrument=inst, value=0.7, threshold=0.6,
                                        bucket_start=f"2024-08-09T00:{i:02d}:00Z") for i in range(20)]
    for _ in range(3):
        for event in events:
            alert_event_deliver.delay(event.pk)
    _wait(lambda: AlertEvent.objects.filter(email_status="sent").count() == 20, message=f"delivery\n{stack.logs()}")
    time.sleep(1.5)  # let any duplicate task finish
    assert len(smtp_sink.messages) == 20
    assert sorted(AlertEvent.objects.values_list("attempts", flat=True)) == [1] * 20
    assert "worker2" in stack.logs() and "alert_event_deliver" in (stack.tmp / "worker2.log").read_text()


def test_failed_sends_retry_with_backoff_and_show_in_history(stack_factory):
    from apps.alerts.tasks import alert_event_deliver
    from tests.conftest import SMTPSink, free_port

    # Nothing listens on this port at first: the worker's sends fail and are retried.
    dead = free_port()
    stack = stack_factory(extra_env={"EMAIL_URL": f"smtp://127.0.0.1:{dead}"})
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="ETHUSDT", base="ETH", quote="USDT")
    rule = AlertRule.objects.create(user=_user(), scope="instrument", instrument=inst, metric="taker_sell_ratio",
                                    threshold=0.6)
    event = AlertEvent.objects.create(rule=rule, instrument=inst, value=0.7, threshold=0.6,
                                      bucket_start="2024-08-09T00:00:00Z")
    alert_event_deliver.delay(event.pk)
    _wait(lambda: AlertEvent.objects.get(pk=event.pk).attempts >= 1
          and AlertEvent.objects.get(pk=event.pk).email_status == "retrying", message=f"a retry\n{stack.logs()}")
    event.refresh_from_db()
    assert "Connection refused" in event.last_error or "Errno" in event.last_error
    smtp_sink = SMTPSink(port=dead)
    smtp_sink.controller.start()  # the server comes back: the retry delivers
    try:
        _wait(lambda: AlertEvent.objects.get(pk=event.pk).email_status == "sent", timeout=40,
              message=f"delivery after retry\n{stack.logs()}")
        assert len(smtp_sink.wait_for(1)) == 1
    finally:
        smtp_sink.controller.stop()
