"""The overview as a first glance: index, regime, drop risk and CVD change from closed minutes only."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache

from apps.markets.services import instrument_ensure
from apps.pressure.models import PressureBar
from apps.pressure.overview import cvd_change, overview_rows

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

T0 = datetime.now(tz=UTC).replace(second=0, microsecond=0) - timedelta(minutes=90)


@pytest.fixture
def inst(flush_redis):
    cache.clear()
    return instrument_ensure(exchange_slug="glance", market="perp", symbol="GLNUSDT", base="GLN", quote="USDT")


def _bars(inst, rows):
    """rows: (minute offset from T0, final, spi, delta)."""
    for minute, final, spi, delta in rows:
        PressureBar.objects.create(
            instrument=inst, interval="1m", bucket_start=T0 + timedelta(minutes=minute), final=final, spi=spi,
            regime="" if spi is None else ("high" if spi >= 74 else "calm"), delta_base=Decimal(delta),
            close=Decimal("101.5"), taker_sell_ratio=0.61, spread_bps=1.25, trades=3)


def test_the_glance_reads_closed_minutes_and_the_forming_one_apart(inst):
    # 10 closed minutes an hour and a half ago (outside the hour), 3 closed in the last hour, then one forming
    # with a provisional index of 99 that must show nowhere but in the price columns.
    _bars(inst, [(m, True, 40.0, "1") for m in range(10)])
    _bars(inst, [(80, True, 50.0, "2.5"), (81, True, 80.0, "-4"), (82, True, 60.0, "0.25"), (83, False, 99.0, "7")])
    (row,) = overview_rows(instruments=[inst], since=T0 + timedelta(minutes=30))
    assert row.headline["spi"] == 60.0 and row.headline["bucket_start"] == (
        T0 + timedelta(minutes=82)).isoformat().replace("+00:00", "Z")
    # CVD change: the closed minutes of the hour ending with the headline's bar; the forming delta (7) and the
    # minutes older than an hour (10 x 1) are not in it.
    assert row.cvd_change == Decimal("-1.25")
    assert row.spark["y"] == [50.0, 80.0, 60.0]
    assert row.bar.bucket_start == T0 + timedelta(minutes=83) and not row.bar.final
    assert cvd_change(instrument_id=inst.pk, end=T0 + timedelta(minutes=9)) == Decimal(10)


def _cell(html: str, field: str) -> tuple[str, str]:
    match = re.search(rf'data-field="{field}" data-value="([^"]*)">(.*?)</td>', html, re.S)
    assert match, field
    return match.group(1), match.group(2)


def test_the_overview_page_shows_the_glance_sortable_with_units(client, inst):
    _bars(inst, [(80, True, 50.0, "2.5"), (81, True, 80.0, "-4"), (82, False, 99.0, "7")])
    html = client.get("/").content.decode()
    assert _cell(html, "spi") == ("80.0", "80")
    assert 'data-value="high"><span class="badge regime-high"' in html
    assert _cell(html, "cvd_change")[1] == "\u22121.5000 GLN"
    assert _cell(html, "close")[1] == "101.50 USDT"
    assert _cell(html, "taker_sell_ratio")[1] == "61%" and _cell(html, "spread_bps")[1] == "1.25 bps"
    assert _cell(html, "bucket_start")[1].endswith('UTC <span class="forming">forming</span>')
    assert html.count('aria-sort="none"') == 9 and "Last closed minute" in html and "Now (forming minute)" in html
    # Why the drop-risk column is empty until an instrument has the history its forecast is fitted on.
    assert "Drop risk shows once an instrument has 28 days of final bars" in " ".join(html.split())


def test_an_instrument_whose_index_warms_up_says_so(client, inst):
    _bars(inst, [(80, True, None, "1")])
    html = client.get("/").content.decode()
    assert "warming up" in _cell(html, "spi")[1] and _cell(html, "regime")[1] == "\u2013"


def test_a_closed_minute_sends_the_overview_its_headline_and_cvd_change(inst, monkeypatch):
    from apps.live import publish

    _bars(inst, [(80, True, 50.0, "2.5"), (81, True, 80.0, "-4")])
    sent = {}
    monkeypatch.setattr(publish, "bars_payload_send", lambda **kwargs: sent.update(kwargs))
    closed = PressureBar.objects.get(instrument=inst, bucket_start=T0 + timedelta(minutes=81))
    publish.bars_publish(instrument=inst, changed={"1m": [closed]}, finalized={"1m": [closed]})
    assert sent["headline"]["1m"]["spi"] == 80.0
    assert sent["overview"] == {"cvd_change_1h": "-1.5"}
    sent.clear()
    publish.bars_publish(instrument=inst, changed={"1m": [closed]}, finalized={})  # nothing closed: no extras
    assert sent["headline"] == {} and sent["overview"] is None


def test_instruments_closing_the_same_minute_share_one_cvd_query(inst):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    other = instrument_ensure(exchange_slug="glance", market="spot", symbol="OTHUSDT", base="OTH", quote="USDT")
    _bars(inst, [(80, True, 50.0, "2.5"), (81, True, 80.0, "-4")])
    _bars(other, [(81, True, 60.0, "3")])
    with CaptureQueriesContext(connection) as queries:
        rows = {r.instrument.pk: r for r in overview_rows(instruments=[inst, other], since=T0)}
    assert (rows[inst.pk].cvd_change, rows[other.pk].cvd_change) == (Decimal("-1.5"), Decimal(3))
    sums = [q["sql"] for q in queries.captured_queries if "SUM(" in q["sql"] and "delta_base" in q["sql"]]
    assert len(sums) == 1, sums


def test_the_sparkline_is_an_svg_path_of_the_last_hour_with_gaps():
    from apps.dashboard.templatetags.sparklines import sparkline_path

    x = ["2026-12-04T10:00:00Z", "2026-12-04T10:01:00Z", "2026-12-04T10:03:00Z", "2026-12-04T10:04:00Z",
         "2026-12-04T11:00:00Z"]
    # The hour ends at 11:00: 10:00 sits at x=0; 10:02 is missing, so 10:03 starts a new segment; y = 100 - index.
    assert sparkline_path(x=x, y=[50.0, 80.0, 60.0, None, 25.5]) == "M0.00 50.0 L1.00 20.0 M3.00 40.0 M60.00 74.5"
    assert sparkline_path(x=[], y=[]) == ""


def test_the_overview_draws_sparklines_without_a_charting_library(client, inst):
    _bars(inst, [(80, True, 50.0, "2.5"), (81, True, 80.0, "-4"), (82, False, 99.0, "7")])
    html = client.get("/").content.decode()
    assert 'class="sparkline" viewBox="0 0 60 100"' in html and "M59.00 50.0 L60.00 20.0" in html
    assert "plotly" not in html.lower()


def test_an_instrument_without_bars_shows_no_index_rather_than_warming_up(client, inst):
    html = client.get("/").content.decode()
    assert _cell(html, "spi")[1] == "\u2013" and "warming up" not in html
    assert "No trade bars yet" in html


def test_the_overview_reads_every_headline_in_a_few_queries_and_each_equals_the_instrument_pages(inst):
    """index_headlines (the overview, all instruments at once) gives what index_headline gives each instrument
    page: the latest final bar's index, its regime's calibrated meaning and the drop risk against its model's
    base rate; an instrument still warming up, or without bars, has none."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.pressure.models import ForecastModel, RegimeCalibration
    from apps.pressure.selectors import index_headline, index_headlines

    warming = instrument_ensure(exchange_slug="glance", market="spot", symbol="WRMUSDT", base="WRM", quote="USDT")
    empty = instrument_ensure(exchange_slug="glance", market="spot", symbol="NONUSDT", base="NON", quote="USDT")
    plain = instrument_ensure(exchange_slug="glance", market="spot", symbol="PLNUSDT", base="PLN", quote="USDT")
    _bars(inst, [(80, True, 50.0, "2.5"), (81, True, 80.0, "-4"), (82, False, 99.0, "1")])
    _bars(warming, [(81, True, None, "1")])
    _bars(plain, [(79, True, 30.0, "1")])
    PressureBar.objects.filter(instrument=inst, bucket_start=T0 + timedelta(minutes=81)).update(
        drop_risk=0.062, drop_risk_model="v7")
    PressureBar.objects.filter(instrument=plain).update(drop_risk=0.01, drop_risk_model="v-other")
    day = (T0 + timedelta(minutes=81)).replace(hour=0, minute=0)
    for instrument, levels in ((inst, (55.0, 71.3, 84.0)), (plain, (60.0, 75.0, 90.0))):
        RegimeCalibration.objects.create(instrument=instrument, interval="1m", day=day, elevated=levels[0],
                                         high=levels[1], extreme=levels[2], bars=40_000)
    RegimeCalibration.objects.create(instrument=inst, interval="1m", day=day - timedelta(days=1), elevated=1,
                                     high=2, extreme=3, bars=40_000)  # another day's: not this bar's
    for version, rate in (("v6", 0.5), ("v7", 0.0124)):
        ForecastModel.objects.create(instrument=inst, interval="1m", horizon_minutes=15, drop_pct=1.0,
                                     train_end=T0 - timedelta(days=int(version[1:])), version=version,
                                     base_rate=rate, params="{}")
    ids = [inst.pk, warming.pk, empty.pk, plain.pk]
    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        many = index_headlines(instrument_ids=ids)
    assert len(queries) <= 4
    assert many == {pk: index_headline(instrument=i, interval="1m") for pk, i in zip(
        ids, (inst, warming, empty, plain), strict=True)}
    got = many[inst.pk]
    assert (got["spi"], got["regime"], got["drop_risk_normal"], got["thresholds"]) == (80.0, "high", 0.0124,
                                                                                     (55.0, 71.3, 84.0))
    assert got["drop_risk_ratio"] == pytest.approx(0.062 / 0.0124)
    assert many[plain.pk]["drop_risk_normal"] is None and many[plain.pk]["thresholds"] == (60.0, 75.0, 90.0)
    assert many[warming.pk] is None and many[empty.pk] is None


def test_the_instrument_pages_index_chart_has_its_bands_at_the_calibrated_thresholds(client, inst):
    """The bands behind the index are where the instrument's regimes change on its latest final bar's day; with no
    calibration yet, at the documented defaults."""
    import json

    from django.conf import settings

    from apps.pressure.models import RegimeCalibration

    def bands() -> list[tuple[float, float]]:
        cache.clear()
        html = client.get(f"/markets/glance/perp/{inst.symbol}/").content.decode()
        text = re.search(r'<script id="spi-figure-data" type="application/json">(.*?)</script>', html, re.S)[1]
        return [(s["y0"], s["y1"]) for s in json.loads(json.loads(text))["layout"]["shapes"]]

    _bars(inst, [(80, True, 50.0, "2.5"), (81, True, 80.0, "-4")])
    low, high, top = settings.SPI_REGIME_THRESHOLDS
    assert bands() == [(0.0, low), (low, high), (high, top), (top, 100.0)]
    day = (T0 + timedelta(minutes=81)).replace(hour=0, minute=0)
    RegimeCalibration.objects.create(instrument=inst, interval="1m", day=day, elevated=55.0, high=71.3, extreme=84.0,
                                     bars=40_000)
    assert bands() == [(0.0, 55.0), (55.0, 71.3), (71.3, 84.0), (84.0, 100.0)]
