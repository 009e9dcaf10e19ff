"""Sign up, verify from the email link, watch an instrument, create a rule, see the live toast."""

import re

import pytest

from apps.replay.services import replay_streams_ensure

pytestmark = pytest.mark.browser
PASSWORD = "a long and unguessable passphrase 42"


def test_signup_verify_watch_alert_and_toast(stack_factory, smtp_sink, browser):
    replay_streams_ensure(history_minutes=0)
    # The replay at 10x: a replayed minute ends every 6 s, so the toast comes without waiting out a real minute.
    stack = stack_factory(beat=True, extra_env={"EMAIL_URL": smtp_sink.url, "REPLAY_SPEED": "10"})
    page = browser.new_page()
    page.goto(stack.url + "/accounts/signup/")
    page.fill("input[name=email]", "frank@example.com")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("form[action*='signup'] button[type=submit]")
    page.wait_for_url("**/accounts/confirm-email/")
    mail = smtp_sink.wait_for(1)
    assert mail, f"no verification email\n{stack.logs()}"
    body = mail[0].get_payload(decode=True) if not mail[0].is_multipart() else \
        mail[0].get_payload()[0].get_payload(decode=True)
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", body.decode()).group(0)
    page.goto(stack.url + "/" + link.split("://", 1)[1].split("/", 1)[1])
    page.click("form button[type=submit]")
    page.wait_for_selector("text=frank@example.com")  # logged in after confirming

    page.goto(stack.url + "/markets/binance-replay/spot/ETHUSDT/")
    page.click("[data-testid=watch]")
    page.wait_for_selector("text=Added")
    assert "On your watchlist" in page.inner_text("[data-testid=watch]")
    page.goto(stack.url + "/watchlists/")
    page.click("text=My watchlist")
    page.wait_for_selector("#heatmap tr[data-instrument]")

    page.goto(stack.url + "/alerts/new/?instrument=" + page.get_attribute("#heatmap tr[data-instrument]",
                                                                          "data-instrument"))
    page.select_option("select[name=scope]", "instrument")
    page.select_option("select[name=metric]", "taker_sell_ratio")
    page.select_option("select[name=comparator]", "gte")
    page.fill("input[name=threshold]", "1")  # 1%: any selling fires it; the point is the live toast
    page.click("#rule-form button[type=submit]")
    page.wait_for_selector("text=Created the rule")
    # Rules act on final bars: the next replayed minute ends and becomes final within about 8 s.
    page.wait_for_selector(".toast", timeout=60_000)
    assert "taker sell ratio" in page.inner_text(".toast")
    assert "ETHUSDT spot · Binance (REPLAY)" in page.inner_text(".toast")
