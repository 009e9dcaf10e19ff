"""manage.py backfill against a local data.binance.vision serving archives built here from real data."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum

from apps.markets.models import Trade
from apps.pressure.models import PressureBar
from tests.recordings import KLINES, raw_trades
from tests.visionserver import VisionServer, zipped

pytestmark = pytest.mark.django_db

MONTHLY = "data/spot/monthly/klines/BTCUSDT/5m"
DAILY = "data/spot/daily/klines/BTCUSDT/5m"


@pytest.fixture
def vision(settings, tmp_path):
    with VisionServer() as server:
        settings.BINANCE_VISION_URL = server.url
        settings.BACKFILL_DIR = tmp_path / "backfill"
        yield server


def _csv(month: str) -> bytes:
    return (KLINES / f"BTCUSDT-5m-{month}.csv").read_bytes()


def _add_month(server: VisionServer, month: str, **kwargs) -> str:
    path = f"{MONTHLY}/BTCUSDT-5m-{month}.zip"
    server.add(path, zipped(f"BTCUSDT-5m-{month}.csv", _csv(month)), **kwargs)
    return path


def _add_days(server: VisionServer, month: str) -> list[str]:
    """The month's daily archives, cut from the real monthly file (288 5m klines a day)."""
    lines = _csv(month).decode().splitlines(keepends=True)
    paths = []
    for day in range(len(lines) // 288):
        name = f"BTCUSDT-5m-{month}-{day + 1:02d}"
        paths.append(f"{DAILY}/{name}.zip")
        server.add(paths[-1], zipped(f"{name}.csv", "".join(lines[day * 288:(day + 1) * 288]).encode()))
    return paths


def _backfill(*args, kind="klines"):
    call_command("backfill", "--symbol", "BTCUSDT", "--kind", kind, *args)


def _volume(start: str, end: str) -> Decimal:
    """Base volume of the 5m kline bars in [start, end) (dates, UTC)."""
    bars = PressureBar.objects.filter(interval="5m", source="klines", bucket_start__gte=f"{start}T00:00Z",
                                      bucket_start__lt=f"{end}T00:00Z")
    return sum((b.taker_buy_base + b.taker_sell_base for b in bars), Decimal(0))


def _csv_volume(month: str, days: int | None = None) -> Decimal:
    """The same from the CSV text."""
    lines = _csv(month).decode().splitlines()[: None if days is None else days * 288]
    return sum((Decimal(line.split(",")[5]) for line in lines), Decimal(0))


def test_months_and_days_are_downloaded_verified_and_imported(vision, capsys):
    _add_month(vision, "2023-10")
    _add_days(vision, "2023-11")
    _backfill("--from", "2023-10-01", "--to", "2023-11-02")
    out = capsys.readouterr().out
    assert "3 archives" in out and "BTCUSDT-5m-2023-10.zip: downloaded, checksum verified" in out
    assert PressureBar.objects.filter(interval="5m", source="klines").count() == 8928 + 2 * 288
    assert _volume("2023-10-01", "2023-11-01") == _csv_volume("2023-10")
    assert _volume("2023-11-01", "2023-11-03") == _csv_volume("2023-11", days=2)
    # Only what was asked: the plan fetched no other day.
    assert not vision.gets(f"{DAILY}/BTCUSDT-5m-2023-11-03.zip")


def test_a_checksum_mismatch_is_refused_and_nothing_of_it_imported(vision, settings):
    _add_month(vision, "2023-10")
    bad = _add_month(vision, "2023-11", checksum="0" * 64)
    with pytest.raises(CommandError) as exc:
        _backfill("--from", "2023-10-01", "--to", "2023-11-30")
    message = str(exc.value)
    assert "\n" not in message and "BTCUSDT-5m-2023-11.zip: checksum mismatch" in message
    assert "the file was refused and nothing of it imported" in message
    assert not PressureBar.objects.filter(bucket_start__gte="2023-11-01T00:00Z").exists()
    assert _volume("2023-10-01", "2023-11-01") == _csv_volume("2023-10")
    assert not (settings.BACKFILL_DIR / bad).exists()


def test_a_month_not_published_falls_back_to_its_days(vision, capsys):
    days = _add_days(vision, "2023-12")
    _backfill("--from", "2023-12-01", "--to", "2023-12-31")
    assert "BTCUSDT-5m-2023-12.zip: not published; using its 31 days" in capsys.readouterr().out
    assert len(vision.gets(f"{MONTHLY}/BTCUSDT-5m-2023-12.zip.CHECKSUM")) == 1
    assert all(len(vision.gets(path)) == 1 for path in days)
    assert _volume("2023-12-01", "2024-01-01") == _csv_volume("2023-12")


def test_an_interrupted_run_continues_where_it_stopped(vision, capsys):
    first = _add_month(vision, "2023-10")
    second = _add_month(vision, "2023-11")
    vision.cut_once.add(second)
    with pytest.raises(CommandError, match=r"BTCUSDT-5m-2023-11\.zip: download failed after"):
        _backfill("--from", "2023-10-01", "--to", "2023-11-30")
    assert not PressureBar.objects.filter(bucket_start__gte="2023-11-01T00:00Z").exists()
    capsys.readouterr()
    _backfill("--from", "2023-10-01", "--to", "2023-11-30")
    out = capsys.readouterr().out
    assert "BTCUSDT-5m-2023-10.zip: already here, checksum verified" in out and "1 imported before" in out
    assert len(vision.gets(first)) == 1  # the verified month is not fetched again
    (cut, resumed) = vision.gets(second)
    # The second request asks only for what the first did not deliver (what arrived of it was kept).
    offset = int(resumed[2].removeprefix("bytes=").removesuffix("-"))
    assert 0 < offset <= cut[3] and offset + resumed[3] == len(vision.files[second])
    assert _volume("2023-10-01", "2023-12-01") == _csv_volume("2023-10") + _csv_volume("2023-11")


def test_a_429_is_answered_by_a_retry_after_its_retry_after(vision):
    path = _add_month(vision, "2024-01")
    vision.once[path] = (429, {"Retry-After": "1"})
    _backfill("--from", "2024-01-01", "--to", "2024-01-31")
    (refused, served) = vision.gets(path)
    assert served[1] - refused[1] >= 0.9  # urllib3 waited as told
    assert _volume("2024-01-01", "2024-02-01") == _csv_volume("2024-01")


def test_aggtrades_archives_go_through_import_trades(vision):
    """Real Binance spot trades around midnight UTC (the bundled recording), as two daily aggTrades archives."""
    trades = {r[0]: r for name in ("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz") for r in raw_trades(name)}
    by_day: dict[str, list[str]] = {}
    for i, t, p, q, m in sorted(trades.values()):
        # Each trade as the aggregate of exactly one trade: a, p, q, f, l, T, m, M (spot, no header).
        day = datetime.fromtimestamp(t / 1000, tz=UTC).strftime("%Y-%m-%d")
        by_day.setdefault(day, []).append(f"{i},{p},{q},{i},{i},{t},{str(m).lower()},true\n")
    assert sorted(by_day) == ["2024-08-08", "2024-08-09"]
    for day, lines in by_day.items():
        name = f"BTCUSDT-aggTrades-{day}"
        vision.add(f"data/spot/daily/aggTrades/BTCUSDT/{name}.zip", zipped(f"{name}.csv", "".join(lines).encode()))
    _backfill("--from", "2024-08-08", "--to", "2024-08-09", kind="aggTrades")
    assert set(Trade.objects.values_list("trade_id", "qty")) == {(i, Decimal(q)) for i, _, _, q, _ in trades.values()}
    assert PressureBar.objects.filter(interval="1m", source="trades").aggregate(n=Sum("trades"))["n"] == len(trades)
