"""manage.py load_derivatives_sample: recorded Bybit funding and open interest at their real times, and the
derivatives panel's labels and empty states (perpetual with the sample, replay perpetual, spot)."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.template import Context, Template
from django.urls import reverse

from apps.derivatives import selectors as dsel
from apps.derivatives.models import FundingRate, MarkPrice, OpenInterest, RecordedSample
from apps.markets.models import Instrument
from apps.markets.services import instrument_ensure
from tests.conftest import ROOT, SHARED_DATA

pytestmark = pytest.mark.django_db

RAW = SHARED_DATA / "cryptofeed-sample-data" / "BYBIT.jsonl"


def _raw_btcusdt_tickers() -> list[dict]:
    """The linear BTCUSDT ticker messages of the raw websocket recording (a file the loader does not read)."""
    out = []
    with RAW.open() as fh:
        for line in fh:
            record = json.loads(line)
            if record.get("t") == "recv" and record.get("conn") == "BYBIT.ws.2":
                message = json.loads(record["data"])
                if message.get("topic") == "tickers.BTCUSDT":
                    out.append(message)
    return out


def _raw_marks(raw: list[dict]) -> list[tuple[int, Decimal, Decimal | None]]:
    """(time, mark, index) at each message that changed either, the other carried from earlier messages."""
    out, state = [], {}
    for message in raw:
        changed = {k: message["data"][k] for k in ("markPrice", "indexPrice") if k in message["data"]}
        state.update(changed)
        if changed and "markPrice" in state:
            out.append((message["ts"], Decimal(state["markPrice"]),
                        Decimal(state["indexPrice"]) if "indexPrice" in state else None))
    return out


def _sample_times(raw: list[dict]) -> list[int]:
    keys = {"openInterest", "openInterestValue", "fundingRate", "markPrice", "indexPrice"}
    return sorted({m["ts"] for m in raw if keys & m["data"].keys()})


def _load() -> str:
    out = io.StringIO()
    call_command("load_derivatives_sample", stdout=out)
    return out.getvalue()


def _panel(instrument) -> str:
    template = Template("{% load derivatives %}{% derivatives_panel instrument %}")
    html = template.render(Context({"instrument": instrument}))
    return re.sub(r"\s+", " ", html)


def _bybit() -> Instrument:
    return Instrument.objects.with_exchange().get(exchange__slug="bybit", market="linear", symbol="BTCUSDT")


def test_the_sample_is_stored_at_the_times_bybit_sent_it():
    _load()
    inst = _bybit()
    assert (inst.kind, inst.base, inst.quote, inst.exchange.name) == ("perp", "BTC", "USDT", "Bybit")
    raw = _raw_btcusdt_tickers()
    oi_times = [m["ts"] for m in raw if {"openInterest", "openInterestValue"} & m["data"].keys()]
    funding_times = [m["ts"] for m in raw if "fundingRate" in m["data"]]
    assert len(raw) == 185 and len(oi_times) == 46 and len(funding_times) == 1
    assert list(OpenInterest.objects.filter(instrument=inst).order_by("time_ms").values_list("time_ms", flat=True)) \
        == oi_times
    funding = FundingRate.objects.get(instrument=inst)
    assert (funding.time_ms, funding.rate) == (funding_times[0], Decimal("0.0001"))  # SOURCE.txt: fundingRate 0.0001
    first = OpenInterest.objects.filter(instrument=inst).order_by("time_ms").first()
    assert first.oi_base == Decimal("59891.732") and round(first.oi_usd / Decimal("1e9"), 2) == Decimal("3.90")
    marks = _raw_marks(raw)
    assert len(marks) > 40 and marks[0][2] is not None
    assert list(MarkPrice.objects.filter(instrument=inst).order_by("time_ms")
                .values_list("time_ms", "mark_price", "index_price")) == marks
    sample = RecordedSample.objects.get(instrument=inst)
    assert (sample.start_ms, sample.end_ms) == (raw[0]["ts"], _sample_times(raw)[-1])
    assert sample.start.date() == datetime(2026, 8, 9, tzinfo=UTC).date() and sample.seconds == 44
    # Nothing outside the recording: no stretched history.
    assert not FundingRate.objects.filter(instrument=inst, time_ms__gt=sample.end_ms).exists()
    assert not OpenInterest.objects.exclude(time_ms__range=(sample.start_ms, sample.end_ms)).exists()
    assert not MarkPrice.objects.exclude(time_ms__range=(sample.start_ms, sample.end_ms)).exists()


def test_loading_again_changes_nothing():
    _load()
    def snapshot():
        return (list(FundingRate.objects.values_list("pk", "time_ms", "rate", "next_funding_ms")),
                list(OpenInterest.objects.values_list("pk", "time_ms", "oi_base", "oi_usd")),
                list(MarkPrice.objects.values_list("pk", "time_ms", "mark_price", "index_price")),
                list(RecordedSample.objects.values_list("pk", "start_ms", "end_ms", "oi_readings")))

    before = snapshot()
    report = _load()
    assert "nothing changed" in report
    assert snapshot() == before


def test_the_perpetual_panel_labels_the_sample_and_charts_it_at_its_times(client):
    _load()
    inst = _bybit()
    html = _panel(inst)
    assert "Recorded sample (Bybit, 2026-08-09 UTC, 44 s)" in html
    assert "21:26:57\u201321:27:41 UTC" in html and "not extended over a longer range" in html
    assert "0.0100% per interval" in html and "59,891.73 BTC" not in html  # the newest reading is shown
    url = reverse("exchanges:derivatives-series", args=[inst.pk])
    assert f'data-series-url="{url}?sample=1" data-refresh-seconds="0"' in html
    payload = client.get(url, {"sample": "1"}).json()
    raw = _raw_btcusdt_tickers()
    times = _sample_times(raw)
    assert payload["rows"] == len(times)  # one row per reading time of any kind
    oi = next(t for t in payload["figure"]["data"] if t["meta"].get("y") == "oi_base")
    assert oi["x"][0] == "2026-08-09T21:26:57.583000Z" and oi["y"][0] == pytest.approx(59891.732)
    funding = next(t for t in payload["figure"]["data"] if t["meta"].get("y") == "funding_rate")
    assert funding["y"] == [pytest.approx(0.01)] * len(times)  # the one reading, carried over the 44 s only
    # Mark and index price at the times Bybit sent them, with the basis between them on hover.
    mark = next(t for t in payload["figure"]["data"] if t["meta"].get("y") == "mark_price")
    index = next(t for t in payload["figure"]["data"] if t["meta"].get("y") == "index_price")
    last = _raw_marks(raw)[-1]
    assert mark["name"] == "Mark price (USDT)" and mark["y"][-1] == pytest.approx(float(last[1]))
    assert index["y"][-1] == pytest.approx(float(last[2]))
    assert mark["customdata"][-1] == pytest.approx(float((last[1] - last[2]) / last[2] * 10_000))
    assert "Mark price" in html and f"{last[1]:,.2f} USDT" in html
    # The live window (the last hours) has none of it: the sample is never drawn as recent data.
    live = client.get(url, {"interval": "1m", "minutes": "10"}).json()
    oi_live = next(t for t in live["figure"]["data"] if t["meta"].get("y") == "oi_base")
    assert all(v is None for v in oi_live["y"])
    # Nor carried past its end in buckets of a range that covers it.
    rows = dsel.derivatives_bars(instrument=inst, interval="1m", start=datetime(2026, 8, 9, 21, 26, tzinfo=UTC),
                                 end=datetime(2026, 8, 9, 21, 30, tzinfo=UTC))
    assert [r["oi_base"] is not None for r in rows] == [True, True, False, False]
    assert [r["funding_rate"] is not None for r in rows] == [True, True, False, False]


def test_live_readings_after_the_sample_make_the_panel_live():
    _load()
    inst = _bybit()
    FundingRate.objects.create(instrument=inst, time_ms=RecordedSample.objects.get().end_ms + 60_000,
                               rate=Decimal("0.0002"))
    html = _panel(inst)
    assert "Recorded sample" not in html and "0.0200% per interval" in html and "data-refresh-seconds=\"30\"" in html


def test_a_replay_perpetual_says_why_it_has_none_and_points_at_the_sample(settings):
    settings.EXCHANGES_ENABLED = False
    _load()
    replay = instrument_ensure(exchange_slug="binance-replay", exchange_name="Binance (REPLAY)", is_replay=True,
                               market="usdm", symbol="BTCUSDT", base="BTC", quote="USDT", kind="perp")
    html = _panel(replay)
    assert "derivatives-chart" not in html
    assert "funding and open interest were not recorded with them" in html
    assert f'<a href="{_bybit().get_absolute_url()}">Bybit BTC/USDT Perpetual</a>' in html
    live = instrument_ensure(exchange_slug="okx", market="swap", symbol="ETH-USDT-SWAP", base="ETH", quote="USDT",
                             kind="perp")
    html = _panel(live)
    assert "Polling is off: set <code>EXCHANGES_ENABLED=1</code>" in html and "Bybit" not in html


def test_a_spot_panel_says_spot_markets_have_no_funding_or_open_interest(settings):
    settings.EXCHANGES_ENABLED = False
    _load()
    spot = instrument_ensure(exchange_slug="binance-replay", exchange_name="Binance (REPLAY)", is_replay=True,
                             market="spot", symbol="BTCUSDT", base="BTC", quote="USDT", kind="spot")
    html = _panel(spot)
    assert "Spot markets have no funding or open interest" in html
    assert 'data-term="funding-rate"' not in html and "derivatives-chart" not in html
    assert "Bybit BTC/USDT Perpetual" in html


def test_make_run_loads_every_demo_step_in_one_process(monkeypatch):
    """`make run` calls load_demo, which runs each setup command in turn (here the light ones, for real)."""
    from django.core.management import get_commands

    from apps.replay.management.commands import load_demo

    assert "$(BIN)/python manage.py load_demo" in (ROOT / "Makefile").read_text()
    names = [name for name, _ in load_demo.STEPS]
    assert names == ["migrate", "load_glossary", "collectstatic", "import_wallet_labels", "load_flow_samples",
                     "load_derivatives_sample", "load_replay"]
    assert set(names) <= set(get_commands())
    monkeypatch.setattr(load_demo, "STEPS", (("load_derivatives_sample", {}),))
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    assert "== load_derivatives_sample" in out.getvalue() and "46 open-interest and" in out.getvalue()
    assert OpenInterest.objects.filter(instrument=_bybit()).count() == 46
