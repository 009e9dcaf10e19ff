"""Celery tasks: thin wrappers taking ids and calling a service. Faults of a source are retried with
exponential back-off and jitter, never sooner than the Retry-After the source asked for."""

from datetime import datetime

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from apps.flows import selectors, services
from apps.flows.clients import SourceUnavailable
from apps.flows.models import Chain
from pressureweb.lib.http import SOURCE_TASK_RETRY

# A dropped database connection is retried too: each sync commits in transactions and is idempotent.
DB_ERRORS = (OperationalError, InterfaceError)
DB_RETRY = {"autoretry_for": DB_ERRORS, "retry_backoff": 1, "retry_backoff_max": 30, "retry_jitter": True,
            "max_retries": 5}
RETRY = SOURCE_TASK_RETRY.celery_options(SourceUnavailable, *DB_ERRORS)


def _honour_retry_after(task, exc: SourceUnavailable):
    if exc.retry_after:
        return task.retry(exc=exc, countdown=exc.retry_after)
    return exc


@shared_task(ignore_result=True, **DB_RETRY)
def btc_wallets_poll() -> int:
    """Fan out one sync per active BTC wallet, unless the source asked us to back off."""
    source = services.esplora_client().source
    if services.source_backing_off(source=source):
        return 0
    ids = selectors.wallet_ids_to_poll(chain=Chain.BTC)
    # A sync still queued when the next poll fans out is redundant: let it expire.
    for wallet_id in ids:
        btc_address_sync.apply_async((wallet_id,), expires=settings.FLOWS_POLL_SECONDS)
    btc_pending_recheck.apply_async(expires=settings.FLOWS_POLL_SECONDS)
    services.btc_reserves_snapshot()
    return len(ids)


@shared_task(bind=True, ignore_result=True, **RETRY)
def btc_address_sync(self, wallet_id: int) -> int:
    try:
        return services.btc_address_sync(wallet_id=wallet_id).txs_new
    except SourceUnavailable as exc:
        raise _honour_retry_after(self, exc) from None


@shared_task(bind=True, ignore_result=True, **RETRY)
def btc_pending_recheck(self) -> dict:
    try:
        return services.btc_pending_recheck()
    except SourceUnavailable as exc:
        raise _honour_retry_after(self, exc) from None


@shared_task(bind=True, ignore_result=True, **RETRY)
def eth_logs_poll(self) -> int:
    client = services.eth_rpc_client()
    if client is None or services.source_backing_off(source=client.source):
        return 0
    try:
        return services.eth_transfers_sync(client=client).logs
    except SourceUnavailable as exc:
        raise _honour_retry_after(self, exc) from None
    finally:
        client.close()


@shared_task(ignore_result=True, **DB_RETRY)
def eth_native_poll() -> int:
    """Fan out one Etherscan sync per active ETH wallet; nothing without ETHERSCAN_API_KEY."""
    client = services.etherscan_client()
    if client is None or services.source_backing_off(source=client.source):
        return 0
    ids = selectors.wallet_ids_to_poll(chain=Chain.ETH)
    for wallet_id in ids:
        eth_native_sync.apply_async((wallet_id,), expires=settings.FLOWS_POLL_SECONDS)
    return len(ids)


@shared_task(bind=True, ignore_result=True, rate_limit="4/s", **RETRY)
def eth_native_sync(self, wallet_id: int) -> int:
    try:
        return len(services.eth_native_sync(wallet_id=wallet_id).new_txids)
    except SourceUnavailable as exc:
        raise _honour_retry_after(self, exc) from None


@shared_task(ignore_result=True, **DB_RETRY)
def flow_bars_refresh(chain: str, asset: str, start: str, end: str) -> int:
    return services.flow_bars_refresh(chain=chain, asset=asset, start=datetime.fromisoformat(start),
                                      end=datetime.fromisoformat(end))


@shared_task(ignore_result=True, **DB_RETRY)
def flow_bars_refresh_recent() -> int:
    return services.flow_bars_refresh_recent()
