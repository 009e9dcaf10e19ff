"""The client's IP address, for anything keyed per client (API rate limits, login throttles).

Behind ``TRUSTED_PROXY_COUNT`` proxies of our own, each appending the address it saw to X-Forwarded-For,
the client is the N-th address from the right: everything left of it was written by the client and can be
forged. Without trusted proxies the header is ignored and the client is the socket's peer (REMOTE_ADDR).
allauth reads the same count (``ALLAUTH_TRUSTED_PROXY_COUNT`` is set from it in settings).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

UNKNOWN = "unknown"  # no peer address at all (a unix socket): such clients share one key


def client_ip(request: HttpRequest) -> str:
    """The client's address as normalised text ('2001:db8::1', '203.0.113.7'), or 'unknown'."""
    count = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if count > 0 and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",")]
        # Fewer hops than proxies: the request did not come through all of them, so only the peer is known.
        if len(hops) >= count:
            address = _address(hops[-count])
            if address is not None:
                return address
    peer = request.META.get("REMOTE_ADDR") or ""
    return _address(peer) or peer or UNKNOWN


def _address(text: str) -> str | None:
    """'203.0.113.7', '203.0.113.7:443', '2001:db8::1' or '[2001:db8::1]:443' -> the address; else None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
