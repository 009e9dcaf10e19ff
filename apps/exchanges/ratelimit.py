"""Per-source request health as a small state machine (pure; the services persist it on Source).

States:

- ``ok``: requests go out.
- ``backoff``: a recent failure (timeout, network error, 5xx); the next request waits an
  exponentially growing, jittered delay.
- ``rate_limited``: HTTP 429; wait what Retry-After says (or the back-off) before asking again.
- ``banned``: HTTP 418 (Binance's IP ban after ignoring 429s); nothing is sent until the ban
  ends, since every request made during a ban lengthens it.
- ``unreachable``: several consecutive timeouts/network errors; still retried on back-off.

A 5xx is the exchange's own trouble: Binance documents the outcome as UNKNOWN, not failed. It
backs off without counting toward ``unreachable``, because the exchange did answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from pressureweb.lib.http import SOURCE_BACKOFF

OK, BACKOFF, RATE_LIMITED, BANNED, UNREACHABLE = "ok", "backoff", "rate_limited", "banned", "unreachable"
STATES = (OK, BACKOFF, RATE_LIMITED, BANNED, UNREACHABLE)

DEFAULT_BAN_S = 120.0  # Binance's shortest ban, used when a 418 comes without Retry-After
UNREACHABLE_AFTER = 3

# Outcome kinds
SUCCESS, RATE_LIMIT, BAN, SERVER_ERROR, TIMEOUT, NETWORK, CLIENT_ERROR = (
    "success", "rate_limit", "ban", "server_error", "timeout", "network", "client_error",
)


@dataclass(frozen=True)
class Health:
    state: str = OK
    until_ms: int | None = None  # no request before this time
    failures: int = 0  # consecutive timeouts / network errors / 5xx, for the back-off exponent
    unreachable_streak: int = 0  # consecutive timeouts / network errors only

    def wait_ms(self, now_ms: int) -> int:
        """How long a caller must wait before the next request (0: go)."""
        if self.until_ms is None:
            return 0
        return max(0, self.until_ms - now_ms)

    def status(self, now_ms: int) -> str:
        """What the Sources page shows: a ban or rate limit that has run out is over."""
        if self.state in (RATE_LIMITED, BANNED) and self.wait_ms(now_ms) == 0:
            return OK
        return self.state


# The project's one back-off (pressureweb.lib.http); the collector's reconnects use it too.
backoff_s = SOURCE_BACKOFF.backoff_s


def classify(exc: BaseException | None, status: int | None) -> str:
    """Outcome kind from the HTTP status (authoritative when known) and the ccxt exception."""
    if exc is None:
        return SUCCESS
    if status == 418:
        return BAN
    if status == 429:
        return RATE_LIMIT
    if status is not None and 500 <= status < 600:
        return TIMEOUT if status == 504 else SERVER_ERROR
    # At use: importing ccxt loads every exchange (half a second), which web and worker start-up do not need;
    # a request that failed has loaded it already.
    import ccxt

    if isinstance(exc, ccxt.RequestTimeout):
        return TIMEOUT
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return RATE_LIMIT
    if isinstance(exc, ccxt.ExchangeNotAvailable):
        return SERVER_ERROR if status is not None else NETWORK
    if isinstance(exc, ccxt.NetworkError):
        return NETWORK
    return CLIENT_ERROR


def transition(h: Health, outcome: str, *, now_ms: int, retry_after: float | None = None,
               rng: random.Random | None = None) -> Health:
    """The next state after a request's outcome."""
    if outcome == SUCCESS:
        return Health()
    if outcome == BAN:
        wait = retry_after if retry_after is not None else max(DEFAULT_BAN_S, backoff_s(h.failures + 1, rng=rng))
        return replace(h, state=BANNED, until_ms=now_ms + int(wait * 1000), failures=h.failures + 1)
    if outcome == RATE_LIMIT:
        wait = SOURCE_BACKOFF.wait_s(h.failures + 1, retry_after=retry_after, rng=rng)
        return replace(h, state=RATE_LIMITED, until_ms=now_ms + int(wait * 1000), failures=h.failures + 1)
    if outcome == SERVER_ERROR:
        failures = h.failures + 1
        return replace(h, state=BACKOFF, until_ms=now_ms + int(backoff_s(failures, rng=rng) * 1000),
                       failures=failures)
    if outcome in (TIMEOUT, NETWORK):
        failures = h.failures + 1
        streak = h.unreachable_streak + 1
        state = UNREACHABLE if streak >= UNREACHABLE_AFTER else BACKOFF
        return Health(state, now_ms + int(backoff_s(failures, rng=rng) * 1000), failures, streak)
    # A 4xx other than 418/429 (bad symbol, bad parameter) is our bug, not the source's health.
    return h
