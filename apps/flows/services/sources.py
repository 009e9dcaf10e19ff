"""The on-chain sources as the services use them: clients from the settings, the status counters on
/status/, and the back-off every worker honours after a source says "too many requests"."""

from __future__ import annotations

import math
import time
from datetime import datetime

from django.conf import settings
from django.core.cache import cache

from apps.flows.clients import EsploraClient, EtherscanClient, EthRpcClient
from apps.markets.services import source_status_record
from pressureweb.lib.http import SOURCE_BACKOFF
from pressureweb.lib.times import dt_to_ms


def esplora_client() -> EsploraClient:
    return EsploraClient(settings.ESPLORA_URL, timeout=settings.FLOWS_HTTP_TIMEOUT)


def eth_rpc_client() -> EthRpcClient | None:
    url = settings.ETH_RPC_URL
    return EthRpcClient(url, timeout=settings.FLOWS_HTTP_TIMEOUT) if url else None


def etherscan_client() -> EtherscanClient | None:
    key = settings.ETHERSCAN_API_KEY
    if not key:
        return None
    return EtherscanClient(key, settings.ETHERSCAN_URL, timeout=settings.FLOWS_HTTP_TIMEOUT)


def _backoff_key(source: str) -> str:
    return f"flows:backoff:{source}"


def source_backoff_set(*, source: str, retry_after: float | None) -> float:
    """After a 429 every worker leaves the source alone (the poll fans out nothing meanwhile): for
    the Retry-After it sent, else for the project's back-off, which grows with each 429 in a row
    (remembered until SOURCE_BACKOFF.max_s after the back-off ends). At least a second. Returns
    the seconds. The state is in the shared cache because the syncs run in many workers."""
    key = _backoff_key(source)
    state = cache.get(key)
    strikes = (state.get("strikes", 0) if isinstance(state, dict) else 0) + 1
    seconds = max(1.0, SOURCE_BACKOFF.wait_s(strikes, retry_after=retry_after))
    cache.set(key, {"until": time.time() + seconds, "strikes": strikes},
              timeout=math.ceil(seconds + SOURCE_BACKOFF.max_s))
    return seconds


def source_backing_off(*, source: str) -> float:
    """Seconds left of a source's back-off, 0 when it may be called."""
    state = cache.get(_backoff_key(source))
    until = state.get("until") if isinstance(state, dict) else None
    return max(0.0, until - time.time()) if until else 0.0


def source_record(source: str, *, inserted: int = 0, unchanged: int = 0, malformed: int = 0, errors: int = 0,
                  last_event: datetime | None = None, last_error: str = "") -> None:
    source_status_record(
        name=source, trades_inserted=inserted, duplicates=unchanged, rejected=malformed, errors=errors,
        last_event_ms=None if last_event is None else dt_to_ms(last_event), last_error=last_error,
    )
