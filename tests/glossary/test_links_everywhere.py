"""Walk every page: each metric label carries a glossary link, and every glossary link resolves."""

import re
from html.parser import HTMLParser

import pytest
from allauth.account.models import EmailAddress

from apps.accounts.models import User
from apps.markets.services import instrument_ensure
from apps.markets.validation import TradeRow
from apps.pressure.services import market_batch_ingest
from apps.watchlists import services as wl
from tests.recordings import raw_trades

pytestmark = pytest.mark.django_db
METRIC_WORDS = re.compile(r"taker sell|taker buy|spread|imbalance|delta|cvd|spi|vwap|funding|netflow|regime|close",
                          re.IGNORECASE)


class Cells(HTMLParser):
    """Collects the text and the glossary links of table headers and chart-guide items."""

    def __init__(self):
        super().__init__()
        self.cells: list[dict] = []
        self.links: set[str] = set()
        self._stack: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and (attrs.get("href") or "").startswith("/glossary/"):
            self.links.add(attrs["href"])
            for cell in self._stack:
                cell["linked"] = True
        if tag == "th" or (tag == "li" and self._in_guide):
            self._stack.append({"text": "", "linked": False})
        if tag == "ul":
            self._in_guide = "panel-guide" in (attrs.get("class") or "")

    _in_guide = False

    def handle_endtag(self, tag):
        if tag in ("th", "li") and self._stack:
            self.cells.append(self._stack.pop())

    def handle_data(self, data):
        for cell in self._stack:
            cell["text"] += data


@pytest.fixture
def site(client):
    inst = instrument_ensure(exchange_slug="binance-replay", market="spot", symbol="ETHUSDT", base="ETH",
                             quote="USDT", is_replay=True)
    market_batch_ingest(instrument=inst, trades=[TradeRow(*t) for t in raw_trades("spot_ethusdt_20240808.gz")],
                        source="test", publish=False)
    user = User.objects.create_user(username="gail", email="gail@example.com", password="x" * 14)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    watchlist = wl.watchlist_create(user=user, name="Main")
    wl.watchlist_item_add(watchlist=watchlist, instrument=inst)
    client.force_login(user)
    return [
        "/", inst.get_absolute_url() + "?range=custom&start=2024-08-08T23:50:00Z&end=2024-08-09T00:10:00Z",
        watchlist.get_absolute_url(), "/watchlists/", "/alerts/", "/alerts/new/", "/status/", "/glossary/",
    ]


def test_every_metric_label_links_to_its_glossary_entry_and_every_link_resolves(client, site):
    links: set[str] = set()
    checked = 0
    for url in site:
        resp = client.get(url)
        assert resp.status_code in (200, 503), url  # the status page is 503 without a worker
        parser = Cells()
        parser.feed(resp.content.decode())
        links |= parser.links
        for cell in parser.cells:
            text = " ".join(cell["text"].split())
            if METRIC_WORDS.search(text) and len(text) < 60:
                checked += 1
                assert cell["linked"], f"{url}: metric label {text!r} has no glossary link"
    assert checked >= 15
    term_pages = {link for link in links if link.count("/") == 3}
    assert len(term_pages) >= 10
    for link in sorted(links):
        assert client.get(link).status_code == 200, f"broken glossary link {link}"
