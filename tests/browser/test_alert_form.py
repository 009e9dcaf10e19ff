"""The alert rule form shows only the fields that apply to the chosen scope and metric, in the metric's unit."""

import pytest
from allauth.account.models import EmailAddress

from apps.accounts.models import User
from apps.alerts.models import AlertRule
from apps.markets.services import instrument_ensure

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a long and unguessable passphrase 42"


def visible(page, field: str) -> bool:
    return page.locator(f"#rule-form [data-field='{field}']").first.is_visible()


def enabled_metrics(page) -> list[str]:
    return page.eval_on_selector("#id_metric", "s => [...s.options].filter(o => !o.disabled).map(o => o.value)")


def test_fields_follow_the_scope_and_metric_and_the_rule_reads_back(live_server, browser):
    spot = instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT",
                             exchange_name="Binance")
    perp = instrument_ensure(exchange_slug="binance", market="usdm", symbol="BTCUSDT", base="BTC", quote="USDT",
                             kind="perp")
    user = User.objects.create_user(username="una", email="una@example.com", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    page = browser.new_page(viewport={"width": 390, "height": 844})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_server.url + "/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action*='login'] button[type=submit]")
    page.wait_for_url(live_server.url + "/")

    page.goto(f"{live_server.url}/alerts/new/?instrument={spot.pk}")
    page.wait_for_selector("#rule-form[data-enhanced='1']")
    # One instrument, the taker sell ratio: a threshold in percent; no watchlist, asset or regime level.
    assert [visible(page, f) for f in ("instrument", "watchlist", "asset")] == [True, False, False]
    assert visible(page, "threshold") and not visible(page, "level") and not visible(page, "event-note")
    assert page.input_value("#id_threshold") == "65"
    assert page.inner_text("[data-unit-for='threshold']") == "%"
    # Funding exists only for perpetuals: not offered for the spot market, offered for the perpetual.
    assert "funding_rate" not in enabled_metrics(page)
    page.select_option("#id_instrument", str(perp.pk))
    assert "funding_rate" in enabled_metrics(page)
    page.select_option("#id_metric", "funding_rate")
    assert page.input_value("#id_threshold") == "0.05" and page.get_attribute("#id_threshold", "max") == "10"

    page.select_option("#id_metric", "episode_start")  # fires on a confirmed episode: nothing to set
    assert not any(visible(page, f) for f in ("comparator", "threshold", "rearm_level", "level"))
    assert visible(page, "event-note")
    page.select_option("#id_metric", "spi_regime")
    assert visible(page, "level") and not visible(page, "threshold")
    page.select_option("#id_metric", "spi")
    assert page.input_value("#id_threshold") == "70" and page.inner_text("[data-unit-for='threshold']") == ""

    # An asset's exchange flows: the asset field, and only the flow metrics.
    page.select_option("#id_scope", "asset")
    assert [visible(page, f) for f in ("instrument", "watchlist", "asset")] == [False, False, True]
    assert enabled_metrics(page) == ["netflow_z", "whale_ratio"]
    assert page.input_value("#id_metric") == "netflow_z" and page.input_value("#id_threshold") == "2"

    # Emails off: quiet hours and the digest go with them.
    assert visible(page, "quiet_start")
    page.uncheck("#id_deliver_email")
    assert not visible(page, "quiet_start") and not visible(page, "daily_digest")
    page.check("#id_deliver_email")

    page.select_option("#id_scope", "instrument")
    page.select_option("#id_metric", "taker_sell_ratio")
    page.fill("#id_threshold", "650")  # the server checks again: a ratio never reaches 650%
    page.click("#rule-form button[type=submit]")
    page.wait_for_selector("text=can never be reached")
    page.fill("#id_threshold", "65")
    page.click("#rule-form button[type=submit]")
    page.wait_for_selector("#rules")
    sentence = "BTCUSDT perp · Binance: taker sell ratio rises to or above 65% on 1m bars, email + live, cooldown 4 h"
    assert sentence in page.inner_text("#rules")
    rule = AlertRule.objects.get(user=user)
    assert (rule.metric, rule.threshold, rule.instrument_id) == ("taker_sell_ratio", 0.65, perp.pk)
    assert not errors, errors
