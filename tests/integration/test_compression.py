"""Pages and API answers travel gzipped to a client that accepts gzip (an instrument page's day of 1m bars is about
1 MB of JSON), and as they are to one that does not."""

import gzip

import pytest

from apps.markets.services import instrument_ensure
from apps.markets.validation import TradeRow
from apps.pressure.services import market_batch_ingest
from tests.recordings import raw_trades

pytestmark = pytest.mark.django_db
RANGE = {"start": "2024-08-08T23:50:00Z", "end": "2024-08-09T00:10:00Z"}
PAGE = "/markets/binance/spot/BTCUSDT/?range=custom&start=2024-08-08T23:50:00Z&end=2024-08-09T00:10:00Z"
API = {"exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "interval": "1m", **RANGE}


@pytest.fixture(autouse=True)
def btc():
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    market_batch_ingest(instrument=inst, trades=[TradeRow(*t) for t in raw_trades("spot_btcusdt_20240808.gz")],
                        source="test", publish=False)


@pytest.mark.parametrize("get", [
    lambda client, **h: client.get(PAGE, **h),
    lambda client, **h: client.get("/api/v1/bars", API, **h),
    lambda client, **h: client.get("/api/v1/bars", {**API, "format": "csv"}, **h),
], ids=["instrument page", "bars JSON", "bars CSV"])
def test_answers_are_gzipped_for_a_client_that_accepts_it_and_plain_otherwise(client, get):
    plain = get(client)
    assert plain.status_code == 200 and not plain.has_header("Content-Encoding")
    body = b"".join(plain.streaming_content) if plain.streaming else plain.content
    assert b"23:5" in body  # the range's bars, not an empty answer

    zipped = get(client, HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert zipped["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped["Vary"]
    wire = b"".join(zipped.streaming_content) if zipped.streaming else zipped.content
    assert len(wire) < len(body) * 0.6
    unzipped = gzip.decompress(wire)
    if b"csrfmiddlewaretoken" in body or b'name="csrf' in body:  # masked anew on every answer
        assert len(unzipped) == len(body)
    else:
        assert unzipped == body


def test_a_pages_bars_are_compressed_once_and_spliced_into_every_gzipped_view_of_it(client, monkeypatch):
    """The day of bars is the page's megabyte: compressed on the first gzipped view, then only the page around it."""
    from pressureweb import page_payloads

    sizes: list[int] = []
    deflate = page_payloads.deflate
    monkeypatch.setattr(page_payloads, "deflate", lambda data: sizes.append(len(data)) or deflate(data))
    bars = client.get(PAGE).content
    bars = bars[bars.index(b'<script id="bars-data"'):]
    bars = len(bars[:bars.index(b"</script>") + len(b"</script>")])

    first = client.get(PAGE, HTTP_ACCEPT_ENCODING="gzip")
    assert sizes.count(bars) == 1
    sizes.clear()
    second = client.get(PAGE, HTTP_ACCEPT_ENCODING="gzip")
    assert sizes and bars not in sizes  # the rest of the page, compressed anew
    assert b'<script id="bars-data"' in gzip.decompress(second.content)
    assert len(gzip.decompress(first.content)) == len(gzip.decompress(second.content))
