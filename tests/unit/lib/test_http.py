"""The one Retry-After parser and the one retry policy (pressureweb/lib/http.py)."""

import random
from datetime import UTC, datetime

import pytest

from pressureweb.lib.http import MAX_RETRY_AFTER_S, SOURCE_BACKOFF, RetryPolicy, retry_after_header, retry_after_s

NOW = datetime(2015, 10, 21, 7, 27, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "seconds"), [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("1.5", 1.5)])
def test_delta_seconds(value, seconds):
    assert retry_after_s(value, now=NOW) == seconds


@pytest.mark.parametrize(("value", "seconds"), [
    ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),  # a minute after NOW
    ("Wed, 21 Oct 2015 07:27:30 -0000", 30.0),  # RFC 5322's "no zone": UTC
    ("Wednesday, 21-Oct-15 07:29:00 GMT", 120.0),  # the obsolete RFC 850 form RFC 9110 still accepts
])
def test_an_http_date_in_the_future_is_the_time_until_then(value, seconds):
    assert retry_after_s(value, now=NOW) == seconds


def test_an_http_date_in_the_past_means_now():
    assert retry_after_s("Wed, 21 Oct 2015 07:00:00 GMT", now=NOW) == 0.0
    assert retry_after_s("Tue, 20 Oct 2015 07:28:00 GMT", now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "nan", "inf", "Wed, 99 Oct 2015 07:28:00 GMT",
                                   "12 seconds"])
def test_absent_or_unreadable_values_are_none(value):
    assert retry_after_s(value, now=NOW) is None


def test_waits_are_clamped_to_zero_and_an_hour():
    assert MAX_RETRY_AFTER_S == 3600.0
    assert retry_after_s("999999", now=NOW) == 3600.0
    assert retry_after_s("3601", now=NOW) == 3600.0
    assert retry_after_s("3599", now=NOW) == 3599.0
    assert retry_after_s("-5", now=NOW) == 0.0
    assert retry_after_s("Fri, 23 Oct 2015 07:27:00 GMT", now=NOW) == 3600.0  # two days ahead


def test_the_header_is_found_whatever_its_case():
    assert retry_after_header({"Retry-After": "12"}) == 12.0
    assert retry_after_header({"retry-after": "12"}) == 12.0
    assert retry_after_header({"RETRY-AFTER": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=NOW) == 60.0
    assert retry_after_header({"Content-Type": "text/plain"}) is None
    assert retry_after_header(None) is None


def test_backoff_doubles_per_attempt_with_equal_jitter_up_to_the_cap():
    policy = RetryPolicy(base_s=2.0, max_s=20.0, max_retries=3)
    rng = random.Random(7)
    for attempt, nominal in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 20.0), (12, 20.0)]:
        delays = [policy.backoff_s(attempt, rng=rng) for _ in range(50)]
        assert all(nominal / 2 <= d <= nominal for d in delays), (attempt, min(delays), max(delays))
        assert len(set(delays)) > 1  # jittered, so workers do not come back in step


def test_the_servers_retry_after_wins_over_the_backoff():
    rng = random.Random(1)
    assert SOURCE_BACKOFF.wait_s(9, retry_after=3.0, rng=rng) == 3.0
    assert SOURCE_BACKOFF.wait_s(1, retry_after=0.0, rng=rng) == 0.0
    assert 0.5 <= SOURCE_BACKOFF.wait_s(1, retry_after=None, rng=rng) <= 1.0


def test_celery_options_carry_the_policy():
    options = RetryPolicy(base_s=5.0, max_s=600.0, max_retries=4).celery_options(ValueError)
    assert options == {"autoretry_for": (ValueError,), "retry_backoff": 5.0, "retry_backoff_max": 600,
                       "retry_jitter": True, "max_retries": 4}
