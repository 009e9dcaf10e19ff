"""Abuse limits: every login (the admin's too) throttled per account and per client IP, behind trusted proxies
too; logins keep working while Redis is down; test emails limited per user."""

import logging

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User
from tests.conftest import free_port

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("flush_redis")]
PASSWORD = "correct horse battery staple 7"
TOO_MANY = "Too many failed login attempts"


def make_user(email, **extra):
    user = User.objects.create_user(username=email.split("@")[0], email=email, password=PASSWORD, **extra)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def login(client, email, password, **meta):
    resp = client.post("/accounts/login/", {"login": email, "password": password}, **meta)
    return resp, "_auth_user_id" in client.session


def test_the_admin_signs_in_only_through_the_throttled_login(client):
    make_user("root@example.com", is_staff=True, is_superuser=True)
    # Django's own admin form used to take 25 wrong passwords and then the right one.
    resp = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/?next=")
    assert "_auth_user_id" not in client.session

    for _ in range(25):
        assert not login(client, "root@example.com", "wrong")[1]
    resp, logged_in = login(client, "root@example.com", PASSWORD)
    assert not logged_in and TOO_MANY in resp.content.decode()
    assert client.get("/admin/").status_code == 302

    fresh = Client(REMOTE_ADDR="198.51.100.9")  # another client, before the account's limit: not yet
    resp, logged_in = login(fresh, "root@example.com", PASSWORD)
    assert not logged_in and TOO_MANY in resp.content.decode()  # the account's own limit holds everywhere


def test_a_staff_member_reaches_the_admin_after_the_site_login_and_others_are_refused(client):
    make_user("root@example.com", is_staff=True, is_superuser=True)
    make_user("carol@example.com")
    assert login(client, "root@example.com", PASSWORD)[1]
    assert client.get("/admin/").status_code == 200
    other = Client()
    assert login(other, "carol@example.com", PASSWORD)[1]
    assert other.get("/admin/login/").status_code == 403


def test_one_accounts_failures_do_not_lock_out_the_other_accounts_on_that_ip(client):
    make_user("alice@example.com")
    make_user("bob@example.com")
    for _ in range(5):
        login(client, "alice@example.com", "wrong")
    resp, logged_in = login(client, "alice@example.com", PASSWORD)
    assert not logged_in and TOO_MANY in resp.content.decode()
    assert login(Client(), "bob@example.com", PASSWORD)[1]  # same address (127.0.0.1), another account


def test_an_address_spraying_many_accounts_is_throttled_and_others_are_not(client):
    make_user("bob@example.com")
    spray = {"REMOTE_ADDR": "203.0.113.7"}
    for n in range(20):
        login(client, f"nobody{n}@example.com", "wrong", **spray)
    resp, logged_in = login(client, "bob@example.com", PASSWORD, **spray)
    assert not logged_in and TOO_MANY in resp.content.decode()
    assert login(Client(), "bob@example.com", PASSWORD, REMOTE_ADDR="203.0.113.8")[1]


def test_behind_a_trusted_proxy_each_client_has_its_own_limit_and_cannot_forge_another(client, settings):
    settings.TRUSTED_PROXY_COUNT = settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    make_user("bob@example.com")
    proxy = {"REMOTE_ADDR": "10.0.0.2"}  # every request arrives from the proxy
    for n in range(20):
        # The attacker writes a different address of its own into the header each time; the proxy appends the
        # real one, which is what counts.
        login(client, f"nobody{n}@example.com", "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 203.0.113.7", **proxy)
    resp, logged_in = login(Client(), "bob@example.com", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.7", **proxy)
    assert not logged_in and TOO_MANY in resp.content.decode()
    assert login(Client(), "bob@example.com", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.8", **proxy)[1]
    # A request that bypassed the proxy (no header) counts as its peer; so does one with fewer hops than proxies
    # (allauth's own reading raised ImproperlyConfigured there: a 500).
    assert login(Client(), "bob@example.com", PASSWORD, REMOTE_ADDR="198.51.100.1")[1]
    settings.TRUSTED_PROXY_COUNT = settings.ALLAUTH_TRUSTED_PROXY_COUNT = 2
    resp, logged_in = login(Client(), "bob@example.com", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.7", **proxy)
    assert resp.status_code == 302 and logged_in


def test_with_redis_down_logins_are_allowed_and_a_warning_is_logged(client, settings, caplog):
    make_user("alice@example.com")
    closed = f"redis://127.0.0.1:{free_port()}/0"
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": closed}}
    with caplog.at_level(logging.WARNING, logger="pressureweb.cache"):
        resp, logged_in = login(client, "alice@example.com", "wrong")
        assert resp.status_code == 200 and not logged_in
        resp, logged_in = login(client, "alice@example.com", PASSWORD)
    assert resp.status_code == 302 and logged_in
    assert any("throttle" in r.getMessage() and "not applied" in r.getMessage() for r in caplog.records)


def test_with_redis_down_other_cache_users_still_see_the_outage(settings):
    import redis
    from django.core.cache import cache

    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    with pytest.raises(redis.ConnectionError):
        cache.get("page:1")


def test_test_emails_are_limited_per_user_with_a_clear_message(client, settings):
    from pressureweb.celery import app

    alice, bob = make_user("alice@example.com"), make_user("bob@example.com")
    app.conf.task_always_eager = True  # this test's scope only: the task body runs in-process
    try:
        client.force_login(alice)
        for _ in range(3):
            resp = client.post(reverse("alerts:test-email"), follow=True)
            assert "A test email is on its way" in resp.content.decode()
        resp = client.post(reverse("alerts:test-email"), follow=True)
        other = Client()
        other.force_login(bob)
        bobs = other.post(reverse("alerts:test-email"), follow=True)
    finally:
        app.conf.task_always_eager = False
    assert "You have asked for 3 test emails in the last 10 minutes" in resp.content.decode()
    assert [m.to for m in mail.outbox] == [["alice@example.com"]] * 3 + [["bob@example.com"]]
    assert "A test email is on its way to bob@example.com" in bobs.content.decode()
