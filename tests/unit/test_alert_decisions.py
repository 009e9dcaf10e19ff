from datetime import UTC, datetime, time, timedelta

from apps.alerts.decisions import alert_decide, in_quiet_hours

NOW = datetime(2024, 8, 9, 12, 0, tzinfo=UTC)
RULE = {"comparator": "gte", "threshold": 0.65, "rearm_level": 0.45, "cooldown": timedelta(hours=4)}


def decide(value, armed=True, last=None, now=NOW, **over):
    return alert_decide(value=value, armed=armed, last_fired_at=last, now=now, **{**RULE, **over})


def test_fires_once_when_crossing_then_waits_for_rearm():
    first = decide(0.70)
    assert first.fire and not first.armed
    still_high = decide(0.80, armed=first.armed, last=NOW)
    assert not still_high.fire and not still_high.armed
    between = decide(0.50, armed=False, last=NOW)
    assert not between.fire and not between.armed, "0.50 is above the re-arm level"
    back = decide(0.40, armed=False, last=NOW)
    assert back.armed and not back.fire


def test_cooldown_blocks_firing_but_keeps_the_rule_armed():
    during = decide(0.9, armed=True, last=NOW - timedelta(hours=1))
    assert not during.fire and during.armed and during.reason == "cooling down"
    after = decide(0.9, armed=True, last=NOW - timedelta(hours=4, seconds=1))
    assert after.fire


def test_falling_rules_mirror_rising_ones():
    rule = {"comparator": "lte", "threshold": -0.3, "rearm_level": -0.1}
    assert decide(-0.35, **rule).fire
    assert not decide(-0.2, armed=False, **rule).armed
    assert decide(-0.05, armed=False, **rule).armed


def test_missing_data_changes_nothing():
    assert decide(None, armed=False) .armed is False
    assert decide(None, armed=True).fire is False


def test_quiet_hours_in_the_users_time_zone_including_past_midnight():
    # 12:00 UTC is 14:00 in Berlin (summer time) and 08:00 in New York.
    assert in_quiet_hours(now=NOW, start=time(13), end=time(15), tz_name="Europe/Berlin")
    assert not in_quiet_hours(now=NOW, start=time(13), end=time(15), tz_name="America/New_York")
    assert in_quiet_hours(now=NOW, start=time(22), end=time(9), tz_name="America/New_York")
    assert not in_quiet_hours(now=NOW, start=None, end=None, tz_name="UTC")
