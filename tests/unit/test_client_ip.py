"""pressureweb.client_ip: the N-th X-Forwarded-For address from the right behind N trusted proxies, else the peer."""

import pytest
from django.test import RequestFactory

from pressureweb.client_ip import client_ip


@pytest.mark.parametrize(("proxies", "forwarded_for", "remote_addr", "client"), [
    (0, None, "192.0.2.10", "192.0.2.10"),
    (0, "203.0.113.5", "192.0.2.10", "192.0.2.10"),  # no trusted proxy: the header is the client's word
    (1, "203.0.113.5", "10.0.0.2", "203.0.113.5"),
    (1, "6.6.6.6, 203.0.113.5", "10.0.0.2", "203.0.113.5"),  # a forged entry left of our proxy's is ignored
    (2, "6.6.6.6, 203.0.113.5, 10.0.0.1", "10.0.0.2", "203.0.113.5"),
    (2, "203.0.113.5", "10.0.0.2", "10.0.0.2"),  # fewer hops than proxies: it bypassed one; only the peer is known
    (1, "not-an-address", "10.0.0.2", "10.0.0.2"),
    (1, "[2001:DB8::1]:443", "10.0.0.2", "2001:db8::1"),  # normalised, so one client is one key
    (1, "203.0.113.5:61000", "10.0.0.2", "203.0.113.5"),
    (1, None, "10.0.0.2", "10.0.0.2"),
    (0, None, "", "unknown"),  # a unix socket: no peer address
])
def test_client_ip(settings, proxies, forwarded_for, remote_addr, client):
    settings.TRUSTED_PROXY_COUNT = proxies
    headers = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}
    request = RequestFactory().get("/", REMOTE_ADDR=remote_addr, **headers)
    assert client_ip(request) == client


def test_the_environment_sets_one_proxy_count_for_the_api_and_allauth():
    import os
    import subprocess
    import sys

    code = ("import django; django.setup(); from django.conf import settings; from allauth import app_settings; "
            "print(settings.TRUSTED_PROXY_COUNT, app_settings.TRUSTED_PROXY_COUNT)")
    env = {**os.environ, "TRUSTED_PROXY_COUNT": "2", "DJANGO_SETTINGS_MODULE": "pressureweb.settings"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["2", "2"]
