"""Celery beat tasks: thin wrappers that take ids and call a service.

A rate-limited or banned source raises SourceDeferred without sending anything; the next beat
tick tries again, so those are not retried here. Failures worth retrying soon (a 5xx, a timeout)
retry with the project's source-task back-off (pressureweb.lib.http.SOURCE_TASK_RETRY), and so does a
dropped database connection: every poll stores in one transaction from a cursor, so a rerun stores the
same rows once.
"""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.exchanges import services
from pressureweb.lib.http import SOURCE_TASK_RETRY

RETRY = SOURCE_TASK_RETRY.celery_options(services.SourceRequestFailed, OperationalError, InterfaceError)


def _deferred_ok(fn, **kwargs) -> int:
    try:
        return fn(**kwargs)
    except services.SourceDeferred:
        return 0


@shared_task(ignore_result=True)
def registry_sync() -> int:
    return len(services.registry_sync())


@shared_task(ignore_result=True)
def trades_backfill_all() -> int:
    """Fan out one trades poll per feed: keeps the store complete even without the collector."""
    feeds = services.feeds_for()
    for feed_id in feeds:
        trades_poll.delay(feed_id)
    return len(feeds)


@shared_task(ignore_result=True, **RETRY)
def trades_poll(feed_id: int) -> int:
    try:
        return services.trades_poll(feed_id=feed_id).inserted
    except services.SourceDeferred:
        return 0


@shared_task(ignore_result=True)
def book_snapshots_all() -> int:
    feeds = services.feeds_for()
    for feed_id in feeds:
        book_snapshot_poll.delay(feed_id)
    return len(feeds)


@shared_task(ignore_result=True, **RETRY)
def book_snapshot_poll(feed_id: int) -> bool:
    return bool(_deferred_ok(services.book_snapshot_poll, feed_id=feed_id))


@shared_task(ignore_result=True)
def derivatives_poll_all() -> int:
    """Funding, open interest and taker statistics for every perpetual feed."""
    n = 0
    for feed_id in services.feeds_for(capability="has_funding"):
        funding_poll.delay(feed_id)
        n += 1
    for feed_id in services.feeds_for(capability="has_open_interest"):
        open_interest_poll.delay(feed_id)
        n += 1
    for feed_id in services.feeds_for(capability="has_taker_ratio"):
        taker_ratio_poll.delay(feed_id)
        n += 1
    return n


@shared_task(ignore_result=True, **RETRY)
def funding_poll(feed_id: int) -> int:
    return _deferred_ok(services.funding_poll, feed_id=feed_id)


@shared_task(ignore_result=True, **RETRY)
def open_interest_poll(feed_id: int) -> int:
    return _deferred_ok(services.open_interest_poll, feed_id=feed_id)


@shared_task(ignore_result=True, **RETRY)
def taker_ratio_poll(feed_id: int) -> int:
    return _deferred_ok(services.taker_ratio_poll, feed_id=feed_id)


@shared_task(ignore_result=True, **RETRY)
def volatility_poll(currency: str) -> int:
    """Deribit DVOL history since the last reading, and the current ATM IV."""
    return (_deferred_ok(services.dvol_poll, currency=currency)
            + _deferred_ok(services.option_iv_poll, currency=currency))
