"""Pure parts: ccxt trades -> TradeRow (taker side, rejects), the rate-limit state machine,
liquidation side mapping per exchange (through ccxt.pro's own parsers), ATM IV."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import ccxt
import pytest

from apps.exchanges import ratelimit
from apps.exchanges.adapters import (
    BinanceUsdm,
    BybitLinear,
    OkxSwap,
    _deribit_expiry_ms,
    num_str,
    option_atm_iv,
    synthetic_id,
)
from apps.exchanges.normalize import Rejected, taker_sell_of, trade_row, trades_normalize
from pressureweb.lib.http import SOURCE_BACKOFF
from tests.exchangeserver import CRYPTOFEED

T0 = 1_723_161_255_342


def ccxt_trade(**kw) -> dict:
    base = {"id": "1", "timestamp": T0, "symbol": "BTC/USDT", "side": "sell", "takerOrMaker": None,
            "price": 61837.63, "amount": 0.02}
    return {**base, **kw}


# --------------------------------------------------------------------------- taker side


def test_public_trade_side_is_the_taker_side():
    assert taker_sell_of(ccxt_trade(side="sell")) is True
    assert taker_sell_of(ccxt_trade(side="buy")) is False
    # Seen from the maker (own fills): the taker did the opposite.
    assert taker_sell_of(ccxt_trade(side="buy", takerOrMaker="maker")) is True
    assert taker_sell_of(ccxt_trade(side="sell", takerOrMaker="taker")) is True
    with pytest.raises(Rejected, match="taker side unknown"):
        taker_sell_of(ccxt_trade(side=None))


def test_binance_futures_aggtrades_parsed_by_ccxt_match_the_recording():
    """Every real aggTrade of BINANCE_FUTURES.jsonl through ccxt.pro's parser, vs the extracted CSV."""
    ex = ccxt.pro.binanceusdm()
    rows = []
    with open(CRYPTOFEED / "BINANCE_FUTURES.jsonl") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["t"] == "recv" and "@aggTrade" in rec["data"]:
                rows.append(ex.parse_ws_trade(json.loads(rec["data"])["data"]))
    norm = trades_normalize(rows)
    assert not norm.rejected and len(norm.rows) == 91
    import csv

    with open(CRYPTOFEED / "binance_futures_aggTrades_extracted.csv") as fh:
        want = {int(r["agg_trade_id"]): r for r in csv.DictReader(fh)}
    for row in norm.rows:
        ref = want[row.trade_id]
        assert row.taker_sell == (ref["is_buyer_maker"].lower() == "true")
        assert Decimal(row.price) == Decimal(ref["price"]) and Decimal(row.qty) == Decimal(ref["quantity"])
    # SOURCE.txt cross-check: SUSHIUSDT taker buy 1619, sell 593.
    sushi = [r for r in norm.rows if want[r.trade_id]["symbol"] == "SUSHIUSDT"]
    assert sum(Decimal(r.qty) for r in sushi if not r.taker_sell) == 1619
    assert sum(Decimal(r.qty) for r in sushi if r.taker_sell) == 593


def test_bybit_ws_public_trades_parsed_by_ccxt_pro_keep_the_taker_side():
    ex = ccxt.pro.bybit()
    ex.set_markets([{"id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "base": "BTC", "quote": "USDT", "settle": "USDT",
                     "type": "swap", "spot": False, "swap": True, "linear": True, "contract": True,
                     "contractSize": 1, "precision": {}, "limits": {}}])
    trades = []
    with open(CRYPTOFEED / "BYBIT.jsonl") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["t"] == "recv" and rec["conn"].endswith(".2") and "publicTrade.BTCUSDT" in rec["data"]:
                for t in json.loads(rec["data"])["data"]:
                    trades.append((ex.parse_ws_trade(t), t["S"]))
    norm = trades_normalize([t for t, _ in trades])
    assert len(norm.rows) == 56
    assert [r.taker_sell for r in norm.rows] == [side == "Sell" for _, side in trades]
    # UUID execIds become stable 63-bit ids.
    assert norm.rows[0].trade_id == synthetic_id(trades[0][1] and trades[0][0]["id"]) > 0


# --------------------------------------------------------------------------- rejects


def test_bad_rows_are_rejected_with_reasons_and_good_rows_kept():
    good = [ccxt_trade(id=str(i), price=61000.5 + i, amount=round(0.001 * (i + 1), 3)) for i in range(100)]
    bad = [
        ccxt_trade(id="900", price=float("nan")),
        ccxt_trade(id="901", amount=-0.5),
        ccxt_trade(id="902", price=1e13),
        ccxt_trade(id="903", amount=0.0),
        ccxt_trade(id="904", side="unknown"),
        ccxt_trade(id=None),
        ccxt_trade(id="905", timestamp=None),
        ccxt_trade(id="906", price=None),
        ccxt_trade(id="907", symbol="FOO/USDT"),
        ccxt_trade(id="5", price=61005.5),  # duplicate id within the batch
        "not a trade",
        {"info": {}, "error": "unparseable trade (ValueError)"},
    ]
    norm = trades_normalize(good + bad, symbol="BTC/USDT")
    assert len(norm.rows) == 100 and [r.trade_id for r in norm.rows] == list(range(100))
    assert norm.rejected == {
        "price not finite": 1, "qty not positive": 2, "price absurdly large": 1, "taker side unknown": 1,
        "missing trade id": 1, "missing or bad timestamp": 1, "missing price": 1, "unknown symbol": 1,
        "duplicate in batch": 1, "malformed trade": 1, "unparseable trade (ValueError)": 1,
    }
    assert norm.max_id == 99 and norm.max_time_ms == T0


def test_contract_amounts_become_base_quantities():
    row = trade_row(ccxt_trade(amount=3.0), contract_size=Decimal("0.01"))
    assert row.qty == "0.03"


def test_num_str_is_exact_and_plain():
    assert num_str(61837.63) == "61837.63"
    assert num_str(1e-05) == "0.00001"
    assert num_str(1e16) == "10000000000000000"
    assert num_str("0.10") == "0.10" and num_str(None) is None and num_str(7) == "7"


# --------------------------------------------------------------------------- rate limits


def test_rate_limit_state_machine():
    rng = random.Random(1)
    h = ratelimit.Health()
    h = ratelimit.transition(h, ratelimit.RATE_LIMIT, now_ms=0, retry_after=5, rng=rng)
    assert (h.state, h.until_ms) == ("rate_limited", 5000)
    assert h.status(4999) == "rate_limited" and h.status(5000) == "ok"
    h = ratelimit.transition(h, ratelimit.BAN, now_ms=10_000, retry_after=None, rng=rng)
    assert h.state == "banned" and h.until_ms >= 10_000 + ratelimit.DEFAULT_BAN_S * 1000
    h = ratelimit.transition(h, ratelimit.SUCCESS, now_ms=20_000)
    assert h == ratelimit.Health()
    for i in range(3):  # 5xx: outcome unknown, never "unreachable"
        h = ratelimit.transition(h, ratelimit.SERVER_ERROR, now_ms=0, rng=rng)
        assert h.state == "backoff" and h.unreachable_streak == 0 and h.failures == i + 1
    for _ in range(3):
        h = ratelimit.transition(h, ratelimit.TIMEOUT, now_ms=0, rng=rng)
    assert h.state == "unreachable"
    h2 = ratelimit.transition(h, ratelimit.CLIENT_ERROR, now_ms=0)
    assert h2 == h  # our own bad request says nothing about the source


def test_backoff_grows_with_jitter_and_is_capped():
    rng = random.Random(7)
    for failures in range(1, 15):
        nominal = min(SOURCE_BACKOFF.max_s, SOURCE_BACKOFF.base_s * 2 ** (failures - 1))
        delays = [ratelimit.backoff_s(failures, rng=rng) for _ in range(50)]
        assert all(nominal / 2 <= d <= nominal for d in delays)
        assert len(set(delays)) > 1


def test_classify_uses_the_status_first():
    assert ratelimit.classify(ccxt.RateLimitExceeded("x"), 418) == ratelimit.BAN  # Binance -1003 body on a 418
    assert ratelimit.classify(ccxt.DDoSProtection("x"), 429) == ratelimit.RATE_LIMIT
    assert ratelimit.classify(ccxt.ExchangeNotAvailable("x"), 503) == ratelimit.SERVER_ERROR
    assert ratelimit.classify(ccxt.RequestTimeout("x"), None) == ratelimit.TIMEOUT
    assert ratelimit.classify(ccxt.ExchangeNotAvailable("x"), None) == ratelimit.NETWORK
    assert ratelimit.classify(ccxt.BadSymbol("x"), 400) == ratelimit.CLIENT_ERROR


# --------------------------------------------------------------------------- liquidations


def test_liquidation_side_mapping_per_exchange():
    """Raw messages in each exchange's documented shape, parsed by ccxt.pro itself."""
    binance = ccxt.pro.binanceusdm()
    binance.set_markets([{"id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "base": "BTC", "quote": "USDT",
                          "settle": "USDT", "type": "swap", "spot": False, "swap": True, "linear": True,
                          "contract": True, "contractSize": 1, "precision": {}, "limits": {}}])
    force_order = {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "9910",
                   "ap": "9910", "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1568014460893}
    liq = binance.parse_ws_liquidation(force_order)
    adapter = BinanceUsdm()
    point = adapter.liquidation_point(binance, adapter_spec(), liq)
    assert (point.position, Decimal(point.price), Decimal(point.qty), point.time_ms) == (
        "long", Decimal(9910), Decimal("0.014"), 1568014460893)
    buy = binance.parse_ws_liquidation({**force_order, "S": "BUY"})
    assert adapter.liquidated_position(buy) == "short"

    bybit = ccxt.pro.bybit()
    # allLiquidation: S is the POSITION side; "Buy" means a long was liquidated.
    msg = {"T": 1739502302929, "s": "BTCUSDT", "S": "Buy", "v": "0.003", "p": "95000.5"}
    assert BybitLinear().liquidated_position(bybit.parse_ws_liquidation(msg)) == "long"
    assert BybitLinear().liquidated_position(bybit.parse_ws_liquidation({**msg, "S": "Sell"})) == "short"

    okx = ccxt.pro.okx()
    details = {"bkLoss": "0", "bkPx": "30000.1", "ccy": "", "posSide": "", "side": "sell", "sz": "5",
               "ts": "1723892524781"}
    order = {"instFamily": "BTC-USDT", "instId": "BTC-USDT-SWAP", "instType": "SWAP", "details": [details]}
    assert OkxSwap().liquidated_position(okx.parse_ws_liquidation(order)) == "long"
    hedged = {**order, "details": [{**details, "side": "buy", "posSide": "short"}]}
    assert OkxSwap().liquidated_position(okx.parse_ws_liquidation(hedged)) == "short"


def adapter_spec():
    from apps.exchanges.adapters import InstrumentSpec

    return InstrumentSpec("BTCUSDT", "BTC", "USDT")


# --------------------------------------------------------------------------- Deribit ATM IV


def test_atm_iv_takes_the_nearest_strike_of_the_nearest_expiry_far_enough_out():
    now = _deribit_expiry_ms("02JAN27") - 12 * 3_600_000
    rows = [
        {"instrument_name": "BTC-02JAN27-60000-C", "mark_iv": 80.0, "underlying_price": 61000.0},  # too close
        {"instrument_name": "BTC-08JAN27-60000-C", "mark_iv": 50.0, "underlying_price": 61000.0},
        {"instrument_name": "BTC-08JAN27-61000-C", "mark_iv": 45.5, "underlying_price": 61000.0},
        {"instrument_name": "BTC-08JAN27-61000-P", "mark_iv": 46.5, "underlying_price": 61000.0},
        {"instrument_name": "BTC-29JAN27-61000-C", "mark_iv": 55.0, "underlying_price": 61050.0},
        {"instrument_name": "BTC-PERPETUAL", "mark_iv": None},
    ]
    point = option_atm_iv(rows, min_days=1, now_ms=now)
    assert point.expiry_ms == _deribit_expiry_ms("08JAN27")
    assert Decimal(point.atm_iv) == Decimal("46")
    assert option_atm_iv(rows[:1], min_days=30, now_ms=now) is None
