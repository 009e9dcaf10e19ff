import csv
import io
import math
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils.html import escape

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


def test_every_page_names_an_icon_that_exists(client):
    import re

    from django.contrib.staticfiles import finders

    href = re.search(r'<link rel="icon" href="/static/([^"]+)"', client.get("/").content.decode()).group(1)
    assert finders.find(href), href


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


@pytest.fixture
def btc_with_spi(settings):
    settings.SPI_MIN_PERIODS = 5
    from apps.replay.services import replay_advance, replay_streams_ensure

    streams = replay_streams_ensure(history_minutes=30)
    btc = next(s for s in streams if s.name == "binance-spot-btcusdt")
    # The feed stops half a minute into a minute, whatever second the anchor (the wall clock) fell on: its clock
    # then leaves exactly one bar forming (ending within BAR_FINAL_GRACE_MS of a minute left two).
    end = btc.anchor_ms + 30 * 60_000
    replay_advance(stream_id=btc.pk, until_ms=end - end % 60_000 - 30_000, publish=False)
    return btc.instrument


def test_pressure_api_gives_spi_regime_and_components_per_bar(client, btc_with_spi):
    params = {"exchange": "binance-replay", "market": "spot", "symbol": "BTCUSDT", "interval": "1m"}
    body = client.get("/api/v1/pressure", params).json()
    rows = body["pressure"]
    assert body["instrument"]["source"] == "replay"
    assert len(rows) >= 25
    assert rows[0]["spi"] is None  # the trailing window is too short at first
    defined = [r for r in rows if r["spi"] is not None]
    assert len(defined) >= 15
    for row in defined:
        assert 0 <= row["spi"] <= 100
        assert row["regime"] in ("calm", "elevated", "high", "extreme")
        assert "long_liquidations" in row["missing"]
        logit = sum(c["contribution"] for c in row["components"].values() if c["contribution"] is not None)
        assert row["spi"] == pytest.approx(100 / (1 + math.exp(-logit)), rel=1e-6)
        assert set(row["components"]["taker_sell_ratio"]) == {"value", "z", "contribution"}
    # Every bar but the forming one is final; only final bars carry a drop risk.
    assert [r["final"] for r in rows] == [True] * (len(rows) - 1) + [False]
    assert all(r["drop_risk"] is None for r in rows if not r["final"])
    csv_text = client.get("/api/v1/pressure", {**params, "format": "csv"}).content.decode()
    header = csv_text.splitlines()[0].split(",")
    assert header[:5] == ["bucket_start", "final", "spi", "regime", "drop_risk"]
    assert "taker_sell_ratio_contribution" in header
    five = client.get("/api/v1/pressure", {**params, "interval": "5m", "start": rows[0]["bucket_start"]}).json()
    assert five["interval"] == "5m" and len(five["pressure"]) >= 5
    assert all(r["final"] for r in five["pressure"][:-1])


def test_instrument_page_explains_the_spi_and_lists_missing_components(client, btc_with_spi):
    from apps.pressure.indicators.index import LABELS
    from apps.pressure.selectors import bar_latest_with_spi

    html = client.get(btc_with_spi.get_absolute_url()).content.decode()
    latest = bar_latest_with_spi(instrument=btc_with_spi)
    assert latest is not None
    text = re.search(r'<p class="spi-explain" id="spi-explain">(.*?)</p>', html, re.S).group(1)
    assert re.fullmatch(r"SPI \d+ \((calm|elevated|high|extreme)\)(: \d+% [^,]+(, \d+% [^,]+)*)?", text)
    assert text.startswith(f"SPI {latest.spi:.0f} ({latest.regime})")
    # The named drivers are the bar's largest positive contributions, largest first.
    positive = sorted(((c["contribution"], k) for k, c in latest.spi_components.items()
                       if (c["contribution"] or 0) > 0), reverse=True)
    named = re.findall(r"\d+% ([^,]+)", text)
    assert named == [escape(LABELS[k]) for _, k in positive[:3]]
    assert "Missing (no data, weights renormalised over the rest)" in html and "long liquidations" in html
    assert 'id="spi-figure-data"' in html


def test_episodes_api_and_page(client, btc_with_spi):
    from apps.pressure.models import Episode

    Episode.objects.create(instrument=btc_with_spi, start="2026-01-01T00:00:00Z", peak_time="2026-01-01T00:05:00Z",
                           peak_spi=83.0, end="2026-01-01T00:20:00Z", bars=20, drawdown=0.012,
                           source="deleveraging", shares={"deleveraging": 0.7})
    body = client.get("/api/v1/episodes", {"exchange": "binance-replay", "market": "spot", "symbol": "BTCUSDT"}).json()
    assert any(e["source"] == "deleveraging" and e["peak_spi"] == 83.0 for e in body["episodes"])
    assert client.get("/api/v1/episodes", {"exchange": "binance-replay"}).status_code == 400
    html = client.get("/episodes/").content.decode()
    assert "Deleveraging" in html and "83" in html


def test_nul_bytes_in_parameters_are_a_400_not_a_database_error(client, btc):
    resp = client.get(URL, {"exchange": "bin\x00ance", "market": "spot", "symbol": "BTCUSDT"})
    assert resp.status_code == 400
    assert client.get("/markets/binance/spot/BTC%00USDT/").status_code == 400
