import os
import secrets
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def _check_deploy(**env) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k != "SITE_URL"}, "DEBUG": "0",
           "SECRET_KEY": secrets.token_urlsafe(60), "ALLOWED_HOSTS": "pressure.example", **env}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_production_settings_pass_check_deploy_without_warnings():
    result = _check_deploy(SITE_URL="https://pressure.example")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_without_site_url():
    result = _check_deploy()
    assert result.returncode != 0
    assert "alerts.E001" in result.stderr and "SITE_URL is ''" in result.stderr
    assert "SITE_URL=https://" in result.stderr  # the hint says what to set


@pytest.mark.parametrize(("site_url", "debug", "ids"), [
    ("", False, ["alerts.E001"]),
    ("pressure.example.com", False, ["alerts.E001"]),  # no scheme: links would be relative
    ("http://pressure.example.com", False, ["alerts.W002"]),
    ("https://pressure.example.com", False, []),
    ("http://127.0.0.1:18801", True, []),  # `make run` on another port
])
def test_site_url_check(settings, site_url, debug, ids):
    from apps.alerts.checks import site_url_check

    settings.SITE_URL, settings.DEBUG = site_url, debug
    assert [message.id for message in site_url_check(None)] == ids


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY",)} | {"DEBUG": "0"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


@pytest.mark.django_db
def test_pages_carry_security_headers(client):
    resp = client.get("/")
    csp = resp["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    assert resp["X-Frame-Options"] == "DENY"
    assert resp["Referrer-Policy"] == "same-origin"
    assert resp["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in resp.content.decode(), "inline scripts would be blocked by the CSP"
