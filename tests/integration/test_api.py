import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.markets.services import instrument_ensure
from apps.markets.validation import TradeRow
from apps.pressure.selectors import API_FIELDS
from apps.pressure.services import market_batch_ingest
from tests.recordings import minute_bars_by_hand, raw_trades

pytestmark = pytest.mark.django_db
URL = "/api/v1/bars"
START, END = "2024-08-08T23:50:00Z", "2024-08-09T00:10:00Z"


@pytest.fixture
def btc():
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    market_batch_ingest(instrument=inst, trades=[TradeRow(*t) for t in raw_trades("spot_btcusdt_20240808.gz")],
                        source="test", publish=False)
    return inst


def test_json_bars_carry_the_contract_fields_exactly(client, btc):
    resp = client.get(URL, {"exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "interval": "1m",
                            "start": START, "end": END})
    assert resp.status_code == 200
    body = resp.json()
    assert body["instrument"]["source"] == "live"
    bars = body["bars"]
    want = minute_bars_by_hand(raw_trades("spot_btcusdt_20240808.gz"))
    assert len(bars) == len(want)
    assert all(list(bar) == list(API_FIELDS) for bar in bars)
    running = Decimal(0)
    for bar, bucket in zip(bars, sorted(want), strict=True):
        w = want[bucket]
        assert bar["bucket_start"] == datetime.fromtimestamp(bucket / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert Decimal(bar["taker_sell_quote"]) == w["sell_q"]  # exact, not float-rounded
        assert Decimal(bar["taker_buy_base"]) == w["buy"]
        running += w["buy"] - w["sell"]
        assert Decimal(bar["cvd_base"]) == running
        assert bar["taker_sell_ratio"] == pytest.approx(float(w["sell"] / (w["buy"] + w["sell"])))


def test_cvd_starts_from_the_beginning_of_the_requested_range(client, btc):
    later = "2024-08-08T23:57:00Z"
    bars = client.get(URL, {"exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "start": later,
                            "end": END}).json()["bars"]
    assert bars[0]["bucket_start"] == later
    assert bars[0]["cvd_base"] == bars[0]["delta_base"]


def test_csv_has_the_same_rows(client, btc):
    params = {"exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "interval": "5m", "start": START,
              "end": END}
    as_json = client.get(URL, params).json()["bars"]
    resp = client.get(URL, {**params, "format": "csv"})
    assert resp["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.content.decode())))
    assert list(rows[0]) == list(API_FIELDS)
    assert [r["taker_sell_base"] for r in rows] == [b["taker_sell_base"] for b in as_json]


@pytest.mark.parametrize(("params", "message"), [
    ({"market": "spot", "symbol": "BTCUSDT"}, "missing parameter(s): exchange"),
    ({"exchange": "binance", "market": "spot", "symbol": "NOPE"}, "unknown instrument"),
    ({"exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "interval": "7m"}, "interval must be one of"),
    ({"exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "start": "yesterday"}, "ISO 8601"),
    ({"exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "start": END, "end": START}, "before end"),
    ({"exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "format": "xml"}, "format must be"),
    ({"exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "start": "2000-01-01T00:00:00Z"}, "too long"),
])
def test_bad_parameters_get_400_with_a_message(client, btc, params, message):
    resp = client.get(URL, params)
    assert resp.status_code == 400
    assert message in resp.json()["error"]


def test_pages_render_with_data_and_empty_states(client, btc):
    assert "BTCUSDT" in client.get("/").content.decode()
    page = client.get("/markets/binance/spot/BTCUSDT/", {"range": "custom", "start": START, "end": END})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="figure-data"' in html and "Taker sell ratio" in html and "historical" not in html
    empty = client.get("/markets/binance/spot/BTCUSDT/").content.decode()
    assert "No bars in this range yet" in empty
    assert client.get("/markets/binance/spot/NOPE/").status_code == 404


def test_long_ranges_are_downsampled_to_a_coarser_interval(client, btc):
    html = client.get("/markets/binance/spot/BTCUSDT/", {"range": "7d", "interval": "1m"}).content.decode()
    assert "Showing 1h bars" in html


def test_plotly_js_served_matches_the_installed_package(client):
    import plotly
    from django.contrib.staticfiles import finders

    path = finders.find("plotly/plotly.min.js")
    assert path and plotly.__file__.rsplit("/", 1)[0] in path


def test_cached_ranges_are_invalidated_when_a_bar_is_written(client, btc, django_capture_on_commit_callbacks):
    params = {"exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "start": START, "end": END}
    before = client.get(URL, params).json()["bars"]
    later = [TradeRow(*t) for t in raw_trades("spot_btcusdt_20240809.gz")]
    with django_capture_on_commit_callbacks(execute=True):
        market_batch_ingest(instrument=btc, trades=later, source="test", publish=False)
    after = client.get(URL, params).json()["bars"]
    assert len(after) > len(before)


def test_overview_reads_bars_in_a_fixed_number_of_queries(client, btc, django_assert_max_num_queries):
    for symbol in ("ETHUSDT", "SOLUSDT", "XRPUSDT"):
        inst = instrument_ensure(exchange_slug="binance", market="spot", symbol=symbol, base=symbol[:3], quote="USDT")
        market_batch_ingest(instrument=inst, trades=[TradeRow(*t) for t in raw_trades("spot_ethusdt_20240808.gz")],
                            source="test", publish=False)
    with django_assert_max_num_queries(8):
        assert client.get("/").status_code == 200
