"""Every page on a phone (390x844) and a desk (1440x900): no page wider than its screen, a menu for the
navigation on the phone, chart legends that cover no data, and axe-core finds no serious or critical issue."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from allauth.account.models import EmailAddress
from axe_playwright_python.sync_playwright import Axe

from apps.accounts.models import User
from apps.alerts.models import AlertEvent, AlertRule
from apps.exchanges.models import Feed, Source
from apps.markets.services import instrument_ensure
from apps.pressure.models import Episode
from apps.replay.services import replay_advance, replay_streams_ensure
from apps.watchlists import services as wl
from tests.browser.test_instrument_page import PANELS, draw_every_panel

pytestmark = pytest.mark.browser
PASSWORD = "a long and unguessable passphrase 42"
PHONE, DESK = {"width": 390, "height": 844}, {"width": 1440, "height": 900}
SPOT = "/markets/binance-replay/spot/BTCUSDT/"
PERP = "/markets/binance-replay/usdm/BTCUSDT/"


def world() -> dict:
    """The glossary, ten minutes of REPLAY bars, an episode, a live source with a feed, a watchlist, a rule that
    fired."""
    streams = replay_streams_ensure(history_minutes=10)
    for stream in streams:
        replay_advance(stream_id=stream.pk, until_ms=stream.anchor_ms + 10 * 60_000, publish=False)
    spot = streams[0].instrument
    now = datetime.now(tz=UTC).replace(second=0, microsecond=0)
    Episode.objects.create(instrument=spot, start=now - timedelta(minutes=8), confirmed_at=now, peak_time=now,
                           peak_spi=83.5, bars=8, drawdown=0.0123, source="mixed")
    live = instrument_ensure(exchange_slug="binance", market="usdm", symbol="BTCUSDT", base="BTC", quote="USDT",
                             kind="perp", exchange_name="Binance")
    Feed.objects.create(source=Source.objects.create(slug="binance-usdm", exchange=live.exchange, market="usdm"),
                        instrument=live)
    user = User.objects.create_user(username="pat", email="pat@example.com", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    watchlist = wl.watchlist_create(user=user, name="Majors")
    for stream in streams:
        wl.watchlist_item_add(watchlist=watchlist, instrument=stream.instrument)
    rule = AlertRule.objects.create(user=user, scope="instrument", instrument=spot, metric="taker_sell_ratio",
                                    threshold=0.65)
    AlertEvent.objects.create(rule=rule, instrument=spot, bucket_start=now, value=0.71, threshold=0.65,
                              email_status="failed", attempts=6, last_error="SMTPServerDisconnected: closed")
    return {"watchlist": watchlist.get_absolute_url(), "user": user}


PUBLIC = ["/", SPOT, PERP, "/episodes/", "/flows/", "/glossary/", "/glossary/taker-sell-ratio/", "/sources/",
          "/status/", "/api/v1/docs", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]
PRIVATE = ["/watchlists/", "{watchlist}", "/alerts/", "/alerts/new/", "/accounts/password/change/"]


def log_in(page, url: str) -> None:
    page.goto(url + "/accounts/login/")
    page.fill("input[name=login]", "pat@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action*='login'] button[type=submit]")
    page.wait_for_selector("text=pat@example.com", state="attached")  # in the folded menu on a phone


def page_problems(page, axe: Axe) -> list[str]:
    problems = []
    width, viewport = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if width > viewport:
        problems.append(f"{width} px wide in a {viewport} px screen")
    for v in axe.run(page).response["violations"]:
        if v["impact"] in ("serious", "critical"):
            problems.append(f"axe {v['impact']} {v['id']}: {[n['target'] for n in v['nodes'][:5]]}")
    return problems


def wait_ready(page, path: str) -> None:
    if path.startswith("/markets/"):
        draw_every_panel(page)  # each drawn when it comes near the screen (on a phone, the price panel too)
        page.locator("#spi-chart").scroll_into_view_if_needed()
        page.wait_for_selector("#spi-chart .main-svg", timeout=20_000)
    elif path == "/api/v1/docs":
        page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    elif path == "/glossary/taker-sell-ratio/":
        page.wait_for_selector("#term-chart[data-ready='1'] .main-svg", timeout=20_000)
    page.wait_for_load_state("load")


def legend_clear_of_data(page, selector: str) -> bool:
    """The chart's legend box (if it has one) overlaps none of its subplots' plot areas."""
    return page.evaluate("""(sel) => {
      const el = document.querySelector(sel);
      const box = el.querySelector('.legend');
      if (!box) return true; // a panel of one trace: its title, no legend
      const legend = box.getBoundingClientRect();
      return [...el.querySelectorAll('.nsewdrag')].every((d) => {
        const r = d.getBoundingClientRect();
        return legend.bottom <= r.top || legend.top >= r.bottom || legend.right <= r.left || legend.left >= r.right;
      });
    }""", selector)


def test_every_page_fits_the_screen_and_passes_axe_on_a_phone_and_a_desk(stack_factory, browser):
    data = world()
    stack = stack_factory()
    axe = Axe()
    problems = {}
    for (size, viewport), theme in itertools.product((("390x844", PHONE), ("1440x900", DESK)), ("dark", "light")):
        context = browser.new_context(viewport=viewport)
        context.add_cookies([{"name": "theme", "value": theme, "url": stack.url}])
        page = context.new_page()
        for path in PUBLIC:
            page.goto(stack.url + path)
            wait_ready(page, path)
            problems[f"{size} {theme} {path}"] = page_problems(page, axe)
            if path in (SPOT, PERP):
                for panel in PANELS:
                    assert legend_clear_of_data(page, f"#{panel}"), f"{size} {theme} {path}: the legend covers #{panel}"
        log_in(page, stack.url)
        for path in PRIVATE:
            path = path.format(**data)
            page.goto(stack.url + path)
            wait_ready(page, path)
            problems[f"{size} {theme} {path}"] = page_problems(page, axe)
        context.close()
    assert not {k: v for k, v in problems.items() if v}, {k: v for k, v in problems.items() if v}
    assert len(problems) == 2 * 2 * (len(PUBLIC) + len(PRIVATE))


def test_the_phone_navigation_is_a_menu_that_opens_by_mouse_and_keyboard(stack_factory, browser):
    stack = stack_factory()
    page = browser.new_page(viewport=PHONE)
    page.goto(stack.url + "/glossary/")
    toggle = page.locator("#menu-toggle")
    nav = page.locator("#site-menu nav")
    assert toggle.is_visible() and not nav.is_visible()
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    assert nav.is_visible() and toggle.get_attribute("aria-expanded") == "true"
    page.keyboard.press("Escape")
    assert not nav.is_visible() and toggle.get_attribute("aria-expanded") == "false"
    assert page.evaluate("document.activeElement.id") == "menu-toggle"
    page.keyboard.press("Enter")
    assert nav.is_visible()
    page.keyboard.press("Tab")  # into the menu: its first link
    assert page.evaluate("document.activeElement.textContent") == "Markets"
    axe_problems = [v["id"] for v in Axe().run(page).response["violations"] if v["impact"] in ("serious", "critical")]
    assert not axe_problems, axe_problems
    page.keyboard.press("Escape")
    for name, path in (("Episodes", "/episodes/"), ("Status", "/status/"), ("Glossary", "/glossary/")):
        page.locator("#menu-toggle").click()
        page.locator("#site-menu nav").get_by_role("link", name=name, exact=True).click()
        page.wait_for_url(f"**{path}")
        assert page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]") == [390, 390]

    desk = browser.new_page(viewport=DESK)
    desk.goto(stack.url + "/glossary/")
    assert not desk.locator("#menu-toggle").is_visible()
    assert desk.locator("#site-menu nav").get_by_role("link", name="Episodes", exact=True).is_visible()


def test_the_phone_menu_is_folded_from_the_first_paint_and_open_without_scripts(stack_factory, browser):
    stack = stack_factory()
    # Folded before any script runs, so nothing below it jumps up when the page becomes interactive.
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.route("**/menu.*.js", lambda route: route.abort())
    page.route("**/menu.js", lambda route: route.abort())
    page.goto(stack.url + "/glossary/")
    assert page.locator("#menu-toggle").is_visible() and not page.locator("#site-menu nav").is_visible()
    context.close()
    # Without scripts the button could not open it: the navigation stays open and the button is gone.
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(stack.url + "/glossary/")
    assert not page.locator("#menu-toggle").is_visible()
    assert page.locator("#site-menu nav").get_by_role("link", name="Episodes", exact=True).is_visible()
    context.close()


# Resolves once the chart drawer has had its turns: each first draw is queued by a timer and run when the browser
# is idle, so a few rounds of both mean any draw that was due has run.
DRAWER_SETTLED = """() => new Promise((done) => {
  let rounds = 4;
  const turn = () => (rounds-- ? setTimeout(() => requestIdleCallback(turn, { timeout: 1000 }), 20) : done());
  turn();
})"""


@pytest.mark.parametrize("viewport", [PHONE, DESK], ids=["390x844", "1440x900"])
def test_on_a_phone_a_chart_below_the_screen_is_first_drawn_when_it_comes_onto_it(stack_factory, browser,
                                                                                   viewport):
    streams = replay_streams_ensure(history_minutes=10)
    replay_advance(stream_id=streams[0].pk, until_ms=streams[0].anchor_ms + 10 * 60_000, publish=False)
    stack = stack_factory()
    page = browser.new_page(viewport=viewport)
    page.goto(stack.url + SPOT)
    # The panel under the price chart: on a phone, scrolled in one step to 100 px below the screen (within the
    # 300 px a desk draws ahead), so it never passes over the screen on the way (the price panel above it is then
    # on the screen); on a desk, on the screen from the start.
    top = "document.getElementById('chart-volume').getBoundingClientRect().top"
    if viewport is PHONE:
        page.evaluate("(y) => window.scrollBy(0, y)", page.evaluate(top) - viewport["height"] - 100)
    page.wait_for_selector("#chart[data-ready='1'] .main-svg", timeout=20_000)
    top = page.evaluate(top)
    page.evaluate(DRAWER_SETTLED)
    drawn = page.evaluate("document.getElementById('chart-volume').dataset.ready === '1'")
    if viewport is PHONE:
        assert viewport["height"] < top < viewport["height"] + 300
        assert not drawn  # a slow phone is not kept busy with what is not on its screen
        page.locator("#chart-volume").scroll_into_view_if_needed()
        page.wait_for_selector("#chart-volume[data-ready='1'] .main-svg", timeout=20_000)
    else:
        assert top < viewport["height"] and drawn


def test_on_a_phone_the_price_panel_under_the_index_is_drawn_when_it_comes_onto_the_screen(stack_factory, browser):
    """A phone's first screen is the index strip: the price panel below it waits, like the other panels, until it
    comes onto the screen. On a desk it is the first thing drawn."""
    streams = replay_streams_ensure(history_minutes=10)
    replay_advance(stream_id=streams[0].pk, until_ms=streams[0].anchor_ms + 10 * 60_000, publish=False)
    stack = stack_factory()
    phone = browser.new_page(viewport={"width": 390, "height": 600})
    phone.goto(stack.url + SPOT)
    assert phone.evaluate("document.getElementById('chart').getBoundingClientRect().top") > 600
    phone.evaluate(DRAWER_SETTLED)
    assert phone.get_attribute("#chart", "data-ready") is None
    assert not phone.evaluate("performance.getEntriesByName('pw:chart-ready').length")
    phone.locator("#chart").scroll_into_view_if_needed()
    phone.wait_for_selector("#chart[data-ready='1'] .main-svg", timeout=20_000)
    assert phone.evaluate("performance.getEntriesByName('pw:chart-ready').length") == 1
    desk = browser.new_page(viewport=DESK)
    desk.goto(stack.url + SPOT)
    desk.wait_for_selector("#chart[data-ready='1'] .main-svg", timeout=20_000)
    assert desk.evaluate("performance.getEntriesByName('pw:chart-ready').length") == 1
