"""Independent checks of what ingestion stored, for the fault tests.

The expected trades come straight from the raw Binance JSON lines (tests/recordings.py), and the expected bars
are bucketed from the stored trades with plain Decimal loops (`minute_bars_by_hand`), never with the project's
bar math (apps/pressure/bars.py, apps/pressure/services.py), so a bug there cannot hide itself.
"""

from __future__ import annotations

import bisect
import functools
from collections import Counter
from decimal import Decimal

from django.conf import settings

from apps.markets.models import Instrument, Trade
from apps.pressure.models import PressureBar
from apps.replay.models import ReplayStream
from apps.replay.recording import recording_load
from tests.recordings import minute_bars_by_hand, raw_trades

TradeKey = tuple[int, int, Decimal, Decimal, bool]  # (trade id, time ms, price, qty, taker sell)
BAR_FIELDS = ("open", "high", "low", "close", "trades", "taker_buy_base", "taker_sell_base", "taker_buy_quote",
              "taker_sell_quote", "delta_base")
COARSE_MS = {"5m": 300_000, "1h": 3_600_000}


@functools.cache
def _raw_rows(files: tuple[str, ...]) -> tuple[tuple[int, ...], tuple[TradeKey, ...]]:
    """The recording's raw trades as exact values, sorted by time, with their times alone for bisecting."""
    rows = sorted(((trade_id, t, Decimal(price), Decimal(qty), sell)
                   for name in files for trade_id, t, price, qty, sell in raw_trades(name, settings.REPLAY_DIR)),
                  key=lambda r: (r[1], r[0]))
    return tuple(r[1] for r in rows), tuple(rows)


def replay_source_rows(stream: ReplayStream) -> list[TradeKey]:
    """Every raw trade the replay must have stored once its clock is at `stream.clock_ms`.

    Values (id, time, price, qty, side) are the raw JSON's; only the replay's documented clock mapping is taken
    from its recording: wall time = anchor + loop * period + (T - recording start), id + loop * id span.
    """
    if stream.clock_ms < 0:
        return []  # nothing fed yet
    rec = recording_load(tuple(str(settings.REPLAY_DIR / f) for f in stream.files), settings.BOOK_SAMPLE_INTERVAL_MS,
                         tuple(settings.BOOK_DEPTH_BANDS))
    times, rows = _raw_rows(tuple(stream.files))
    out = []
    for loop in range(stream.clock_ms // rec.period_ms + 1):
        base = loop * rec.period_ms
        # Raw time T is fed once base + T - start <= clock.
        end = bisect.bisect_right(times, stream.clock_ms - base + rec.start_ms)
        out += [(trade_id + loop * rec.id_span, stream.anchor_ms + base + t - rec.start_ms, price, qty, sell)
                for trade_id, t, price, qty, sell in rows[:end]]
    return out


def stored_trades(instrument: Instrument) -> list[TradeKey]:
    return sorted(Trade.objects.filter(instrument=instrument).values_list(
        "trade_id", "time_ms", "price", "qty", "taker_sell"))


def assert_trades_equal(instrument: Instrument, source: list[TradeKey], stored: list[TradeKey] | None = None) -> None:
    """The stored trades are exactly the source rows: none lost, none duplicated or made up, every value equal."""
    have, want = Counter(stored_trades(instrument) if stored is None else stored), Counter(source)
    lost, extra = want - have, have - want
    assert not lost and not extra, (
        f"{instrument}: {sum(lost.values())} of {len(source)} source trades lost, {sum(extra.values())} stored "
        f"trades duplicated or not in the source; lost e.g. {sorted(lost)[:3]}, extra e.g. {sorted(extra)[:3]}")


def bars_by_hand(trades: list[TradeKey]) -> dict[str, dict[int, dict]]:
    """1m bars of the trades by Decimal loops; 5m and 1h as sums of those same minutes."""
    minutes = {}
    for bucket, m in minute_bars_by_hand(trades).items():
        minutes[bucket] = {"open": m["open"], "high": m["high"], "low": m["low"], "close": m["close"],
                           "trades": m["trades"], "taker_buy_base": m["buy"], "taker_sell_base": m["sell"],
                           "taker_buy_quote": m["buy_q"], "taker_sell_quote": m["sell_q"]}
    out = {"1m": minutes}
    for interval, size in COARSE_MS.items():
        coarse: dict[int, dict] = {}
        for bucket in sorted(minutes):
            m, c = minutes[bucket], coarse.get(bucket - bucket % size)
            if c is None:
                coarse[bucket - bucket % size] = dict(m)
                continue
            c["high"], c["low"], c["close"] = max(c["high"], m["high"]), min(c["low"], m["low"]), m["close"]
            for key in ("trades", "taker_buy_base", "taker_sell_base", "taker_buy_quote", "taker_sell_quote"):
                c[key] += m[key]
        out[interval] = coarse
    for bars in out.values():
        for bar in bars.values():
            bar["delta_base"] = bar["taker_buy_base"] - bar["taker_sell_base"]
    return out


def assert_bars_equal_by_hand(instrument: Instrument, stored: list[TradeKey] | None = None) -> None:
    """Every stored 1m, 5m and 1h bar equals the by-hand bars of the stored trades, field by field.

    Bars of minutes with book samples but no trades are allowed, with no prices and zero volumes.
    """
    want = bars_by_hand(stored_trades(instrument) if stored is None else stored)
    for interval, expected in want.items():
        stored = {int(b.bucket_start.timestamp()) * 1000: b
                  for b in PressureBar.objects.filter(instrument=instrument, interval=interval)}
        traded = {bucket for bucket, bar in stored.items() if bar.trades}
        assert traded == set(expected), (
            f"{instrument} {interval}: bars missing for {sorted(set(expected) - traded)[:5]}, "
            f"bars with trades that the stored trades do not have: {sorted(traded - set(expected))[:5]}")
        for bucket, bar in expected.items():
            got = {field: getattr(stored[bucket], field) for field in BAR_FIELDS}
            diff = {f: (got[f], bar[f]) for f in BAR_FIELDS if got[f] != bar[f]}
            assert not diff, f"{instrument} {interval} bar at {bucket}: (stored, by hand) differ in {diff}"
        for bucket, bar in stored.items():
            if not bar.trades:
                assert (bar.open, bar.high, bar.low, bar.close) == (None,) * 4, (instrument, interval, bucket)
                assert not any(getattr(bar, f) for f in BAR_FIELDS[5:]), (instrument, interval, bucket)


def assert_replay_stored_exactly_the_source() -> int:
    """For every replay stream: trades equal the raw source up to its clock, bars equal the by-hand bars.

    Returns the number of trades checked (so a caller can tell the check was not vacuous).
    """
    checked = 0
    for stream in ReplayStream.objects.select_related("instrument"):
        source, stored = replay_source_rows(stream), stored_trades(stream.instrument)
        assert_trades_equal(stream.instrument, source, stored)
        assert_bars_equal_by_hand(stream.instrument, stored)
        checked += len(source)
    return checked
