"""Binance raw-recording parser, checked against the real recordings in shared/data.

Pure tests: no Django. Counts come from the data's SOURCE.txt, and every parsed field is
cross-checked against an independent stdlib-json reading of the same raw lines.
"""

from __future__ import annotations

import gc
import gzip
import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.markets.feeds.binance import (
    BookTickerMsg,
    DepthDiffMsg,
    DepthSnapshotMsg,
    FileStats,
    MalformedMessage,
    TradeMsg,
    iter_file,
    parse_payload,
    parse_raw_line,
)

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance-raw-feed"

# From SOURCE.txt: trades, bookTicker updates, depth diffs, snapshots.
EXPECTED = {
    "spot_btcusdt_20240808.gz": {"TradeMsg": 9_757, "BookTickerMsg": 28_040, "DepthDiffMsg": 3_451},
    "spot_btcusdt_20240809.gz": {"TradeMsg": 10_147},
    "spot_ethusdt_20240808.gz": {"TradeMsg": 6_106},
    "usdm_btcusdt_20240808.gz": {"TradeMsg": 21_313, "BookTickerMsg": 66_089, "DepthDiffMsg": 6_551},
}
FILES = list(EXPECTED)


@pytest.fixture(scope="module")
def recordings() -> dict[str, tuple[list, FileStats]]:
    assert DATA_DIR.is_dir(), f"real Binance recordings missing: {DATA_DIR}"
    out = {}
    # Holding ~230k parsed messages triggers many full GC passes that scan them all; the
    # objects are acyclic, so pausing the collector while loading only saves time.
    gc.disable()
    try:
        for name in FILES:
            stats = FileStats()
            out[name] = (list(iter_file(DATA_DIR / name, stats=stats)), stats)
    finally:
        gc.enable()
    return out


def _raw_trades(name: str) -> list[dict]:
    """Independent reading: stdlib json over the raw lines, no code from the module under test."""
    trades = []
    with gzip.open(DATA_DIR / name, "rb") as fh:
        for line in fh:
            if b'@trade"' in line:
                trades.append(json.loads(line.split(b" ", 1)[1])["data"])
    return trades


# --------------------------------------------------------------------------- real files


@pytest.mark.parametrize("name", FILES)
def test_counts_match_source(recordings, name):
    msgs, stats = recordings[name]
    assert stats.malformed == 0 and stats.blank == 0
    assert stats.parsed == stats.lines == len(msgs)
    for kind, expected in EXPECTED[name].items():
        assert stats.by_type[kind] == expected, kind
    assert sum(isinstance(m, TradeMsg) for _, m in msgs) == EXPECTED[name]["TradeMsg"]


@pytest.mark.parametrize("name", FILES)
def test_trades_match_independent_json_reading(recordings, name):
    msgs, _ = recordings[name]
    trades = [m for _, m in msgs if isinstance(m, TradeMsg)]
    raw = _raw_trades(name)
    assert len(trades) == len(raw) == EXPECTED[name]["TradeMsg"]
    # m=true: the buyer was the maker, so the taker SOLD.
    raw_sells = sum(1 for d in raw if d["m"] is True)
    assert sum(t.taker_sell for t in trades) == raw_sells
    assert 0 < raw_sells < len(raw)
    for t, d in zip(trades, raw, strict=True):
        expected = (d["t"], d["T"], d["p"], d["q"], d["m"])
        assert (t.trade_id, t.time_ms, t.price, t.qty, t.taker_sell) == expected
        assert t.symbol == d["s"]


@pytest.mark.parametrize("name", FILES)
def test_snapshot_and_diff_shapes(recordings, name):
    msgs, _ = recordings[name]
    futures = name.startswith("usdm")
    snaps = [m for _, m in msgs if isinstance(m, DepthSnapshotMsg)]
    if name == "spot_btcusdt_20240809.gz":
        assert snaps == []  # continuation file: the book carries over from 0808
    else:
        assert len(snaps) == 1
        snap = snaps[0]
        assert len(snap.bids) == len(snap.asks) == 1000
        assert snap.symbol == ("ETHUSDT" if "eth" in name else "BTCUSDT")  # inferred from the stream
        assert (snap.time_ms is not None) == futures
        assert float(snap.bids[0][0]) > float(snap.bids[-1][0])
        assert float(snap.bids[0][0]) < float(snap.asks[0][0])
    diffs = [m for _, m in msgs if isinstance(m, DepthDiffMsg)]
    assert diffs and all((d.prev_final_id is not None) == futures for d in diffs)
    assert all(d.first_id <= d.final_id for d in diffs)
    tickers = [m for _, m in msgs if isinstance(m, BookTickerMsg)]
    assert all((t.time_ms is not None) == futures for t in tickers)


def test_receive_timestamps_are_monotonic_ns(recordings):
    for name in FILES:
        ts = [r for r, _ in recordings[name][0]]
        assert ts == sorted(ts)
        assert 1_723_000_000 * 10**9 < ts[0] < 1_724_000_000 * 10**9


# --------------------------------------------------------------------------- parsing units

TRADE = {
    "stream": "btcusdt@trade",
    "data": {
        "e": "trade",
        "E": 1,
        "s": "BTCUSDT",
        "t": 7,
        "p": "61837.63000000",
        "q": "0.02000000",
        "T": 1723161255342,
        "m": True,
        "M": True,
    },
}
DEPTH = {
    "stream": "btcusdt@depth@100ms",
    "data": {
        "e": "depthUpdate",
        "E": 5,
        "s": "BTCUSDT",
        "U": 10,
        "u": 12,
        "b": [["100.5", "1.0"], ["100.4", "0"]],
        "a": [["100.6", "2.5"]],
    },
}
TICKER = {
    "stream": "btcusdt@bookTicker",
    "data": {"u": 12, "s": "BTCUSDT", "b": "100.5", "B": "1.0", "a": "100.6", "A": "2.5"},
}


def _with(base: dict, **changes) -> dict:
    data = dict(base["data"])
    for key, value in changes.items():
        if value is ...:
            data.pop(key)
        else:
            data[key] = value
    return {**base, "data": data}


def test_parse_raw_line_str_and_bytes():
    line = '1723161254087896568 {"stream":"x@trade","data":{}}\n'
    assert parse_raw_line(line) == (1723161254087896568, {"stream": "x@trade", "data": {}})
    assert parse_raw_line(line.encode()) == parse_raw_line(line)


def test_trade_parsing_keeps_exact_strings():
    t = parse_payload(TRADE)
    assert t == TradeMsg("BTCUSDT", 7, 1723161255342, "61837.63000000", "0.02000000", True)
    assert parse_payload(_with(TRADE, m=False)).taker_sell is False
    with pytest.raises(AttributeError):
        t.price = "1"  # frozen


def test_depth_and_ticker_parsing():
    d = parse_payload(DEPTH)
    bids = (("100.5", "1.0"), ("100.4", "0"))
    assert d == DepthDiffMsg("BTCUSDT", 5, 10, 12, None, bids, (("100.6", "2.5"),))
    fut = parse_payload({"stream": "btcusdt@depth@0ms", "data": {**DEPTH["data"], "pu": 9, "T": 4}})
    assert fut.prev_final_id == 9
    assert parse_payload(TICKER) == BookTickerMsg("BTCUSDT", 12, "100.5", "1.0", "100.6", "2.5", None)
    fut_t = parse_payload(
        {"stream": "btcusdt@bookTicker", "data": {**TICKER["data"], "e": "bookTicker", "E": 8, "T": 7}}
    )
    assert fut_t.time_ms == 7  # transaction time preferred, like trades
    snap = parse_payload({"lastUpdateId": 3, "bids": [["1.5", "2"]], "asks": []}, "btcusdt")
    assert snap == DepthSnapshotMsg(3, (("1.5", "2"),), (), None, "BTCUSDT")


def test_raw_non_combined_frames():
    assert parse_payload(TRADE["data"]) == parse_payload(TRADE)
    assert parse_payload(DEPTH["data"]) == parse_payload(DEPTH)
    assert parse_payload(TICKER["data"]) == parse_payload(TICKER)  # spot bookTicker has no "e"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_with(TRADE, p="NaN"), "invalid price"),
        (_with(TRADE, p="nan"), "invalid price"),
        (_with(TRADE, p="Infinity"), "invalid price"),
        (_with(TRADE, p="1e5"), "invalid price"),
        (_with(TRADE, p="1_000"), "invalid price"),
        (_with(TRADE, p=" 1.0"), "invalid price"),
        (_with(TRADE, p=61837.63), "invalid price"),
        (_with(TRADE, p="0.00000000"), "non-positive price"),
        (_with(TRADE, q="-0.02"), "invalid qty"),
        (_with(TRADE, q="0"), "non-positive qty"),
        (_with(TRADE, q="2000000000"), "absurd qty"),
        (_with(TRADE, p="1000000000.5"), "absurd price"),
        (_with(TRADE, q="0." + "0" * 25 + "1"), "too many decimals"),
        (_with(TRADE, s=5), "field 's'"),
        (_with(TRADE, p=...), "missing field 'p'"),
        (_with(TRADE, m=...), "missing field 'm'"),
        (_with(TRADE, m="true"), "not a boolean"),
        (_with(TRADE, t=True), "not a non-negative integer"),
        (_with(TRADE, T="1723161255342"), "not a non-negative integer"),
        (_with(TRADE, e="aggTrade"), "does not match stream"),
        (_with(DEPTH, u=9), "u < U"),
        (_with(DEPTH, U=...), "missing field 'U'"),
        (_with(DEPTH, b=[["100.5", "NaN"]]), "invalid bid qty"),
        (_with(DEPTH, a=[["-1", "1"]]), "invalid ask price"),
        (_with(DEPTH, a=[["0", "1"]]), "non-positive ask price"),
        (_with(DEPTH, a=[["100.6"]]), "bad ask level"),
        (_with(DEPTH, a=[["100.6", "1", "2"], ["3"]]), "bad ask level"),
        (_with(DEPTH, a=[["1,1,1", "1"]]), "invalid ask price"),
        (_with(DEPTH, a=[["100.6", 1.5]]), "invalid ask qty"),
        (_with(DEPTH, a="100.6"), "not a list"),
        (_with(TICKER, b="inf"), "invalid bid price"),
        (_with(TICKER, A=...), "missing field 'A'"),
        ({"stream": "btcusdt@kline_1m", "data": {}}, "unknown stream"),
        ({"stream": "btcusdt@depth20@100ms", "data": {}}, "unknown stream"),
        ({"stream": "btcusdt@trade", "data": None}, "data"),
        ({"e": "24hrTicker", "s": "BTCUSDT"}, "unknown stream"),
        ({"hello": 1}, "unknown stream"),
        ({"lastUpdateId": 1, "bids": [["1", "1"]]}, "missing field 'asks'"),
        ({"lastUpdateId": -1, "bids": [], "asks": []}, "non-negative integer"),
    ],
)
def test_malformed_payloads(payload, reason):
    with pytest.raises(MalformedMessage) as exc:
        parse_payload(payload)
    assert reason in exc.value.reason
    assert isinstance(exc.value, ValueError) and str(exc.value) == exc.value.reason


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1723161254087896568 {not json", "not JSON"),
        ("1723161254087896568 [1, 2]", "not an object"),
        ('1723161254087896568 {"p": NaN}', "not JSON"),
        ('abc {"stream": "x"}', "receive timestamp"),
        ('-5 {"stream": "x"}', "receive timestamp"),
        ('{"stream":"x"}', "receive_ns"),
        ('{"stream": "x"}', "receive timestamp"),
        ("", "receive_ns"),
        (b"\xff\xfe garbage", "receive timestamp"),
    ],
)
def test_malformed_lines(line, reason):
    with pytest.raises(MalformedMessage) as exc:
        parse_raw_line(line)
    assert reason in exc.value.reason


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80) | st.binary(max_size=80))
def test_garbage_lines_only_raise_malformed(line):
    try:
        _ts, payload = parse_raw_line(line)
    except MalformedMessage:
        return
    try:
        parse_payload(payload)
    except MalformedMessage:
        pass


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([TRADE, DEPTH, TICKER]),
    st.sampled_from(["p", "q", "m", "t", "T", "U", "u", "b", "a", "B", "A", "s", "e", "E"]),
    _json,
)
def test_corrupted_fields_never_crash(base, key, value):
    """Any field replaced by arbitrary JSON either parses or raises MalformedMessage."""
    try:
        parse_payload(_with(base, **{key: value}))
    except MalformedMessage as exc:
        assert exc.reason


@pytest.mark.parametrize("compressed", [True, False])
def test_iter_file_skips_and_counts_malformed(tmp_path, compressed):
    good = [
        f"100 {json.dumps(TRADE)}",
        f"200 {json.dumps(DEPTH)}",
        f"300 {json.dumps({'lastUpdateId': 11, 'bids': [], 'asks': []})}",
    ]
    bad = [
        "101 {truncated",
        f"102 {json.dumps(_with(TRADE, p='NaN'))}",
        '103 {"stream":"x@kline_1m","data":{}}',
    ]
    text = "\n".join([good[0], bad[0], good[1], "", bad[1], bad[2], good[2]]) + "\n"
    path = tmp_path / ("rec.gz" if compressed else "rec.txt")
    if compressed:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    stats = FileStats()
    out = list(iter_file(path, stats=stats))
    assert [ts for ts, _ in out] == [100, 200, 300]
    assert (stats.lines, stats.blank, stats.parsed, stats.malformed) == (7, 1, 3, 3)
    assert sum(stats.reasons.values()) == 3
    assert out[2][1].symbol == "BTCUSDT"  # snapshot labelled with the stream's symbol
    assert list(iter_file(path, symbol_hint="ethusdt"))[2][1].symbol == "ETHUSDT"


def test_orjson_and_json_agree_on_real_line():
    with gzip.open(DATA_DIR / FILES[0], "rb") as fh:
        line = fh.readline()
    _ts, payload = parse_raw_line(line)
    assert payload == json.loads(line.split(b" ", 1)[1]) == orjson.loads(line.split(b" ", 1)[1])
