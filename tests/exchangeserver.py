"""A local stand-in for the exchanges: HTTP + WebSocket on 127.0.0.1, serving REAL recordings.

The real ccxt adapters are pointed at it by base URL (``api_base``/``ws_base``): every URL keeps
its original host as the first path segment (``/fapi.binance.com/fapi/v1/aggTrades``), and the
server routes on it. Nothing in the app is patched.

Data (read in place from ../shared/data, see each SOURCE.txt):

- Binance spot and USD-M BTCUSDT (and spot ETHUSDT): binance-raw-feed raw WS messages with the
  REST depth snapshot. The feed has raw ``@trade`` messages; the adapters use ``aggTrade`` (the
  keyless id-paged stream), so each trade is served as the aggregate of exactly one trade
  (``a = f = l = t``) with its real price, qty, time and ``m``. Depth diffs are replayed as
  recorded; the REST snapshot is the recorded one advanced by the diffs published so far, so it
  chains onto the live stream like the exchange's own.
- Binance USD-M market metadata (exchangeInfo) and SUSHIUSDT/AKRO/KEEP/CTK aggTrades (real ``a``
  ids): cryptofeed BINANCE_FUTURES.jsonl. XRPUSDT funding history: freqtrade (GPL, read in place).
- Bybit v5 spot/linear metadata, publicTrade and tickers: cryptofeed BYBIT.jsonl.
- OKX trades: cryptofeed OKX_filtered.jsonl. Kraken trades page: nautilus kraken_http_trades.json.
- Market metadata the recordings lack (Binance spot exchangeInfo, OKX instruments, Kraken pairs,
  Deribit) and endpoints nobody recorded (Binance openInterest/openInterestHist/takerlongshortRatio,
  Deribit DVOL/book summary) are served in the exchanges' documented shapes, built from the values
  of the real recordings where there are any; each such builder says so.

Time: a stream publishes its messages one by one (``publish_all`` or ``play(rate)``). REST sees
what has been published, as at a real exchange; a WebSocket client gets what is published while
it is connected. Faults are scripted per path: status codes with headers, slow answers,
malformed bodies, dropped connections, skipped depth diffs.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import re
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from aiohttp import WSMsgType, web

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RAW = DATA / "binance-raw-feed"
CRYPTOFEED = DATA / "cryptofeed-sample-data"


# --------------------------------------------------------------------------- recordings


def _jsonl(name: str):
    with open(CRYPTOFEED / name) as fh:
        for line in fh:
            yield json.loads(line)


@functools.cache
def binance_raw(name: str) -> tuple[list[dict], dict | None, list[dict]]:
    """(trades, snapshot, diffs) of a binance-raw-feed file, in file order."""
    trades, diffs, snapshot = [], [], None
    with gzip.open(RAW / name, "rt") as fh:
        for line in fh:
            _, _, body = line.partition(" ")
            msg = json.loads(body)
            stream = msg.get("stream", "")
            if stream.endswith("@trade"):
                trades.append(msg["data"])
            elif "@depth" in stream:
                diffs.append(msg["data"])
            elif "lastUpdateId" in msg:
                snapshot = msg
    return trades, snapshot, diffs


def agg_from_trade(d: dict) -> dict:
    """A raw trade as the aggregate of one trade (aggTrade fields, REST shape)."""
    return {"a": d["t"], "p": d["p"], "q": d["q"], "f": d["t"], "l": d["t"], "T": d["T"], "m": d["m"]}


def looped(records: list[dict], times: int) -> list[dict]:
    """The recording repeated with ids shifted past the previous copy (times restamped on send)."""
    span = records[-1]["a"] - records[0]["a"] + 1
    return [{**r, "a": r["a"] + i * span, "f": r["f"] + i * span, "l": r["l"] + i * span}
            for i in range(times) for r in records]


@functools.cache
def futures_recording() -> dict:
    """cryptofeed BINANCE_FUTURES: exchangeInfo, depth snapshots, aggTrades (REST shape) per symbol."""
    out = {"exchangeInfo": None, "depth": {}, "aggTrades": {}}
    for rec in _jsonl("BINANCE_FUTURES.jsonl"):
        if rec["t"] == "http" and "exchangeInfo" in rec["url"]:
            out["exchangeInfo"] = json.loads(rec["data"])
        elif rec["t"] == "http" and "/depth" in rec["url"]:
            sym = rec["url"].split("symbol=")[1].split("&")[0]
            out["depth"][sym] = json.loads(rec["data"])
        elif rec["t"] == "recv" and "@aggTrade" in rec["data"]:
            d = json.loads(rec["data"])["data"]
            out["aggTrades"].setdefault(d["s"], []).append(
                {k: d[k] for k in ("a", "p", "q", "f", "l", "T", "m")})
    return out


@functools.cache
def bybit_recording() -> dict:
    out = {"instruments": {}, "trades": {}, "tickers": {}}
    for rec in _jsonl("BYBIT.jsonl"):
        if rec["t"] == "http" and "instruments-info" in rec["url"]:
            cat = rec["url"].split("category=")[1].split("&")[0]
            out["instruments"][cat] = json.loads(rec["data"])
        elif rec["t"] == "recv":
            cat = "linear" if rec["conn"].endswith(".2") else "spot"
            d = json.loads(rec["data"])
            topic = d.get("topic", "")
            if topic.startswith("publicTrade."):
                out["trades"].setdefault((cat, d["data"][0]["s"]), []).extend(d["data"])
            elif topic.startswith("tickers.") and d.get("type") == "snapshot":
                out["tickers"].setdefault((cat, d["data"]["symbol"]), []).append((d["ts"], d["data"]))
    return out


@functools.cache
def okx_trades() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for rec in _jsonl("OKX_filtered.jsonl"):
        if rec["t"] == "recv" and '"channel":"trades"' in rec["data"]:
            d = json.loads(rec["data"])
            for t in d.get("data", []):
                out.setdefault(t["instId"], []).append(t)
    return out


@functools.cache
def kraken_trades() -> dict:
    return json.loads((DATA / "nautilus-trader-testdata" / "kraken_http_trades.json").read_text())


@functools.cache
def bybit_ws_messages() -> dict[str, list[dict]]:
    """Bybit publicTrade and orderbook.200 messages per category (conn ws.2 linear, ws.3 spot), file order."""
    out: dict[str, list[dict]] = {"linear": [], "spot": []}
    for rec in _jsonl("BYBIT.jsonl"):
        if rec["t"] == "recv" and ('"publicTrade.' in rec["data"] or '"orderbook.' in rec["data"]):
            out["linear" if rec["conn"].endswith(".2") else "spot"].append(json.loads(rec["data"]))
    return out


@functools.cache
def okx_ws_messages() -> list[dict]:
    """OKX trades and books data messages (not the subscribe acks), file order."""
    out = []
    for rec in _jsonl("OKX_filtered.jsonl"):
        if rec["t"] == "recv":
            d = json.loads(rec["data"])
            if (d.get("arg") or {}).get("channel") in ("trades", "books") and "data" in d:
                out.append(d)
    return out


@functools.cache
def coinbase_ws_messages() -> list[dict]:
    """Coinbase Advanced Trade market_trades and l2_data messages, one product each, file order."""
    out = []
    for rec in _jsonl("COINBASE_truncated.jsonl"):
        if rec["t"] != "recv":
            continue
        d = json.loads(rec["data"])
        if d.get("channel") not in ("market_trades", "l2_data"):
            continue
        by_product: dict[str, list[dict]] = {}
        for ev in d["events"]:
            if "product_id" in ev:
                by_product.setdefault(ev["product_id"], []).append(ev)
            else:
                for t in ev["trades"]:
                    events = by_product.setdefault(t["product_id"], [])
                    if not events or events[-1]["type"] != ev["type"]:
                        events.append({"type": ev["type"], "trades": []})
                    events[-1]["trades"].append(t)
        for product, events in by_product.items():
            out.append({**d, "events": events, "_product": product})
    return out


def kraken_v2_trade(row: list, symbol: str) -> dict:
    """A Kraken REST trade row [price, volume, time, b/s, m/l, misc, trade_id] as WS v2 sends a trade."""
    seconds = Decimal(repr(row[2]))
    micros = int(seconds * 1_000_000)
    stamp = datetime.fromtimestamp(micros // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return {"symbol": symbol, "side": "sell" if row[3] == "s" else "buy", "price": float(row[0]),
            "qty": float(row[1]), "ord_type": "market" if row[4] == "m" else "limit", "trade_id": row[6],
            "timestamp": f"{stamp}.{micros % 1_000_000:06d}Z"}


@functools.cache
def funding_history_xrp() -> list[list]:
    return json.loads((DATA / "freqtrade-testdata" / "XRP_USDT_USDT-8h-funding_rate.json").read_text())


# --------------------------------------------------------------------------- documented shapes


def _decimals(text: str) -> int:
    return len(text.partition(".")[2].rstrip("0"))


def binance_spot_exchange_info(symbols: dict[str, tuple[str, str, str, str]]) -> dict:
    """Spot exchangeInfo in Binance's documented shape (no spot metadata was recorded).

    ``symbols``: {symbol: (base, quote, tickSize, stepSize)} with sizes from the real trades.
    """
    out = []
    for sym, (base, quote, tick, step) in symbols.items():
        out.append({
            "symbol": sym, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8, "quoteAsset": quote,
            "quotePrecision": 8, "quoteAssetPrecision": 8, "orderTypes": ["LIMIT", "MARKET"],
            "icebergAllowed": True, "ocoAllowed": True, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False, "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
                {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step},
            ],
        })
    return {"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": [], "exchangeFilters": [],
            "symbols": out}


def kraken_assets() -> dict:
    """Kraken /0/public/Assets (documented shape) for the assets of the recorded pairs."""
    def asset(alt, decimals):
        return {"aclass": "currency", "altname": alt, "decimals": decimals, "display_decimals": 5,
                "collateral_value": 1.0, "status": "enabled"}
    return {"error": [], "result": {"XXBT": asset("XBT", 10), "XETH": asset("ETH", 10), "USDT": asset("USDT", 8)}}


def okx_instruments(inst_type: str) -> dict:
    """OKX /public/instruments in the documented shape for the recorded instruments (list dropped)."""
    rows = []
    specs = {"SPOT": [("BTC-USDT", "BTC", "USDT", "0.1", "0.00000001"),
                      ("ETH-USDT", "ETH", "USDT", "0.01", "0.000001")],
             "SWAP": [("BTC-USDT-SWAP", "BTC", "USDT", "0.1", "0.01"), ("ETH-USDT-SWAP", "ETH", "USDT", "0.01", "0.1"),
                      ("UNI-USD-SWAP", "UNI", "USD", "0.001", "1")]}
    for inst, base, quote, tick, lot in specs.get(inst_type, []):
        swap = inst_type == "SWAP"
        linear = swap and quote == "USDT"
        rows.append({
            "instType": inst_type, "instId": inst, "uly": f"{base}-{quote}" if swap else "",
            "instFamily": f"{base}-{quote}" if swap else "", "baseCcy": "" if swap else base,
            "quoteCcy": "" if swap else quote, "settleCcy": (quote if linear else base) if swap else "",
            "ctVal": ({"BTC": "0.01", "ETH": "0.1"}.get(base, "1") if linear else "10") if swap else "",
            "ctMult": "1" if swap else "", "ctValCcy": (base if linear else "USD") if swap else "",
            "ctType": ("linear" if linear else "inverse") if swap else "", "listTime": "1606468572000",
            "expTime": "", "lever": "100" if swap else "", "tickSz": tick, "lotSz": lot, "minSz": lot,
            "state": "live", "alias": "", "category": "1", "maxLmtSz": "10000", "maxMktSz": "1000",
        })
    return {"code": "0", "msg": "", "data": rows}


def kraken_asset_pairs() -> dict:
    """Kraken /0/public/AssetPairs (documented shape) for the recorded XBTUSDT and ETHUSDT."""
    def pair(alt, base, quote, ws):
        return {"altname": alt, "wsname": ws, "aclass_base": "currency", "base": base, "aclass_quote": "currency",
                "quote": quote, "lot": "unit", "pair_decimals": 1, "cost_decimals": 5, "lot_decimals": 8,
                "lot_multiplier": 1, "leverage_buy": [], "leverage_sell": [], "fees": [[0, 0.4]],
                "fees_maker": [[0, 0.25]], "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40,
                "ordermin": "0.0001", "costmin": "0.5", "tick_size": "0.1", "status": "online"}
    return {"error": [], "result": {"XBTUSDT": pair("XBTUSDT", "XXBT", "USDT", "XBT/USDT"),
                                    "ETHUSDT": pair("ETHUSDT", "XETH", "USDT", "ETH/USDT")}}


def coinbase_products() -> dict:
    """Coinbase Advanced Trade /market/products (documented shape) for the recorded BTC-USD and ETH-USD
    (the recording's products list was dropped); increments as in the recorded prices and sizes."""
    def product(pid, base, base_name):
        return {"product_id": pid, "price": "", "price_percentage_change_24h": "", "volume_24h": "",
                "volume_percentage_change_24h": "", "base_increment": "0.00000001", "quote_increment": "0.01",
                "quote_min_size": "1", "quote_max_size": "150000000", "base_min_size": "0.00000001",
                "base_max_size": "3400", "base_name": base_name, "quote_name": "US Dollar", "watched": False,
                "is_disabled": False, "new": False, "status": "online", "cancel_only": False, "limit_only": False,
                "post_only": False, "trading_disabled": False, "auction_mode": False, "product_type": "SPOT",
                "quote_currency_id": "USD", "base_currency_id": base, "fcm_trading_session_details": None,
                "mid_market_price": "", "alias": "", "alias_to": [], "base_display_symbol": base,
                "quote_display_symbol": "USD", "view_only": False, "price_increment": "0.01",
                "display_name": pid, "product_venue": "CBE"}
    return {"products": [product("BTC-USD", "BTC", "Bitcoin"), product("ETH-USD", "ETH", "Ethereum")],
            "num_products": 2}


def coinbase_currencies(kind: str) -> dict:
    """Coinbase /v2/currencies (fiat), /v2/currencies/crypto and /v2/exchange-rates (documented shapes)."""
    if kind == "fiat":
        return {"data": [{"id": "USD", "name": "US Dollar", "min_size": "0.01"}]}
    if kind == "crypto":
        return {"data": [{"asset_id": f"asset-{code.lower()}", "code": code, "name": name, "color": "#000000",
                          "sort_index": str(i), "exponent": 8, "type": "crypto", "address_regex": ""}
                         for i, (code, name) in enumerate((("BTC", "Bitcoin"), ("ETH", "Ethereum")))]}
    return {"data": {"currency": "USD", "rates": {"USD": "1", "BTC": "0.0000153", "ETH": "0.00052"}}}


def okx_checksum(bids: list[list], asks: list[list]) -> int:
    """OKX's book checksum: CRC32 of the best 25 bids and asks interleaved as ``px:sz``, signed 32-bit."""
    parts = []
    for i in range(25):
        if i < len(bids):
            parts += bids[i][:2]
        if i < len(asks):
            parts += asks[i][:2]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


# --------------------------------------------------------------------------- streams


@dataclass
class TradeStream:
    """One market's trades: ``records`` in REST shape, ``published`` how many are visible."""

    key: tuple
    records: list[dict]
    published: int = 0
    id_key: str = "a"

    def visible(self) -> list[dict]:
        return self.records[: self.published]


@dataclass
class BookStream:
    """Binance depth: recorded snapshot + diffs; the server's book advances as diffs publish."""

    symbol: str
    snapshot: dict
    diffs: list[dict]
    futures: bool
    published: int = 0
    bids: dict = field(default_factory=dict)
    asks: dict = field(default_factory=dict)
    last_update_id: int = 0

    def __post_init__(self):
        self.last_update_id = self.snapshot["lastUpdateId"]
        self.bids = {p: q for p, q in self.snapshot["bids"]}
        self.asks = {p: q for p, q in self.snapshot["asks"]}
        # Only diffs that move past the snapshot are ever published.
        self.diffs = [d for d in self.diffs if d["u"] > self.last_update_id]

    def apply(self, diff: dict) -> None:
        for side, levels in ((self.bids, diff["b"]), (self.asks, diff["a"])):
            for p, q in levels:
                if Decimal(q) == 0:
                    side.pop(p, None)
                else:
                    side[p] = q
        self.last_update_id = diff["u"]

    def depth(self, limit: int) -> dict:
        bids = sorted(self.bids.items(), key=lambda kv: -Decimal(kv[0]))[:limit]
        asks = sorted(self.asks.items(), key=lambda kv: Decimal(kv[0]))[:limit]
        out = {"lastUpdateId": self.last_update_id, "bids": [list(b) for b in bids], "asks": [list(a) for a in asks]}
        if self.futures:
            now = int(time.time() * 1000)
            out.update(E=now, T=now)
        return out


@dataclass
class LevelBook:
    """A price-level book the server keeps for a Bybit/OKX/Coinbase stream: the recorded snapshot
    advanced by the updates published so far, so a (re)subscribe gets the book as it is now."""

    bids: dict = field(default_factory=dict)  # Decimal price -> the level as the exchange sends it
    asks: dict = field(default_factory=dict)
    seq: int = 0  # the exchange's update id of the last applied message (Bybit u, OKX seqId)
    extra: dict = field(default_factory=dict)  # other fields of the last message (Bybit seq, ts)

    def set(self, bid: bool, price: str, qty: str, level) -> None:
        side = self.bids if bid else self.asks
        if Decimal(qty) == 0:
            side.pop(Decimal(price), None)
        else:
            side[Decimal(price)] = level

    def top(self, bid: bool, limit: int | None = None) -> list:
        side = self.bids if bid else self.asks
        return [side[p] for p in sorted(side, reverse=bid)[:limit]]


@dataclass
class WsEvent:
    """One recorded message of a replay: ``topic`` is what a client subscribes to receive it."""

    kind: str  # "trades" or "book"
    key: tuple  # the TradeStream / LevelBook key
    topic: str
    msg: dict
    upto: int = 0  # for trades: how many of the stream's records are published after this message


@dataclass
class Replay:
    """The recorded WebSocket messages of one connection, published one by one."""

    ws_host: str
    path: str
    events: list[WsEvent]
    published: int = 0

    def remaining(self) -> int:
        return len(self.events) - self.published


# WebSocket hosts -> the REST host whose streams they carry.
WS_HOSTS = {"stream.binance.com:9443": "api.binance.com", "fstream.binance.com": "fapi.binance.com",
            "stream.bybit.com": "api.bybit.com"}
BYBIT_WS, OKX_WS, COINBASE_WS, KRAKEN_WS = ("stream.bybit.com", "ws.okx.com:443", "advanced-trade-ws.coinbase.com",
                                            "ws.kraken.com")


class _Client:
    def __init__(self, ws: web.WebSocketResponse, host: str, ws_host: str = "", path: str = ""):
        self.ws = ws
        self.host = host
        self.ws_host = ws_host
        self.path = path
        self.streams: set[str] = set()
        self.seq = 0  # Coinbase's per-connection sequence_num
        self.lock = asyncio.Lock()  # a snapshot goes out whole before the updates that follow it


# --------------------------------------------------------------------------- the server


class ExchangeServer:
    """Run with ``start()`` (a thread with its own event loop); ``stop()`` ends it."""

    SPOT = "api.binance.com"
    FAPI = "fapi.binance.com"

    def __init__(self, *, port: int = 0, restamp: bool = False, spot_files=("spot_btcusdt_20240808.gz",),
                 with_eth: bool = True):
        self.port = port
        self.restamp = restamp  # stamp trade times with the send time (for ingest-lag benchmarks)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self.faults: dict[str, deque] = {}
        self.requests: list[tuple[str, str]] = []
        self.clients: list[_Client] = []
        self.skip_depth = 0
        self.skip_depth_topic: str | None = None
        self.injected: deque = deque()
        self.trades: dict[tuple, TradeStream] = {}
        self.books: dict[tuple, BookStream] = {}
        self.ws_books: dict[tuple, LevelBook] = {}
        self.replays: dict[str, Replay] = {}
        self.answer_pings = True  # False: text pings go unanswered (the client's keepalive must notice)
        self.pings: dict[str, int] = {}
        self.ws_received: list[tuple[str, dict]] = []  # JSON frames clients sent (subscribe, ping ...)
        self._load(spot_files, with_eth)
        self._load_ws()
        self._play_task = None
        self._playing: list[tuple] = []
        self.lock = threading.Lock()

    # ------------------------------------------------------------------ data

    def _load(self, spot_files, with_eth: bool) -> None:
        spot_trades, snap, diffs = [], None, []
        for name in spot_files:
            t, s, d = binance_raw(name)
            spot_trades += t
            diffs += d
            snap = snap or s
        spot = [agg_from_trade(t) for t in spot_trades]
        self.trades[(self.SPOT, "BTCUSDT")] = TradeStream((self.SPOT, "BTCUSDT"), spot)
        self.books[(self.SPOT, "BTCUSDT")] = BookStream("BTCUSDT", snap, diffs, futures=False)
        if with_eth:
            t, s, d = binance_raw("spot_ethusdt_20240808.gz")
            self.trades[(self.SPOT, "ETHUSDT")] = TradeStream((self.SPOT, "ETHUSDT"), [agg_from_trade(x) for x in t])
            self.books[(self.SPOT, "ETHUSDT")] = BookStream("ETHUSDT", s, d, futures=False)
        t, s, d = binance_raw("usdm_btcusdt_20240808.gz")
        self.trades[(self.FAPI, "BTCUSDT")] = TradeStream((self.FAPI, "BTCUSDT"), [agg_from_trade(x) for x in t])
        self.books[(self.FAPI, "BTCUSDT")] = BookStream("BTCUSDT", s, d, futures=True)
        fut = futures_recording()
        self.fapi_info = fut["exchangeInfo"]
        for sym, rows in fut["aggTrades"].items():
            self.trades[(self.FAPI, sym)] = TradeStream((self.FAPI, sym), rows)
        self.fapi_depth = fut["depth"]
        self.funding = {"XRPUSDT": funding_history_xrp()}
        self.bybit = bybit_recording()
        for (cat, sym), rows in self.bybit["trades"].items():
            self.trades[("bybit", cat, sym)] = TradeStream(("bybit", cat, sym), rows, id_key="i")
        for inst, rows in okx_trades().items():
            self.trades[("okx", inst)] = TradeStream(("okx", inst), rows, id_key="tradeId")
        kraken = kraken_trades()
        self.trades[("kraken", "XBTUSDT")] = TradeStream(("kraken", "XBTUSDT"), kraken["result"]["XBTUSDT"])
        self.kraken_last = kraken["result"]["last"]
        self.spot_info = binance_spot_exchange_info({
            sym: (sym[:-4], "USDT", "0.01000000", "0.00001000" if sym == "BTCUSDT" else "0.00010000")
            for (_, sym) in [k for k in self.trades if k[0] == self.SPOT]
        })
        self.dvol: dict[str, list] = {}
        self.deribit_book: dict[str, list] = {}
        self.oi_hist: dict[str, list] = {}
        self.taker_ratio: dict[str, list] = {}
        self.liquidation_events: list[dict] = []

    def _load_ws(self) -> None:
        """The Bybit, OKX, Coinbase and Kraken WebSocket replays (see the module docstring)."""
        for cat, messages in bybit_ws_messages().items():
            events, counts = [], {}
            for d in messages:
                topic = d["topic"]
                if topic.startswith("publicTrade."):
                    key = ("bybit", cat, d["data"][0]["s"])
                    counts[key] = counts.get(key, 0) + len(d["data"])
                    events.append(WsEvent("trades", key, topic, d, counts[key]))
                    continue
                key = ("bybit", cat, d["data"]["s"])
                if d["type"] == "snapshot" and key not in self.ws_books:
                    book = self.ws_books[key] = LevelBook(seq=d["data"]["u"])
                    for bid, levels in ((True, d["data"]["b"]), (False, d["data"]["a"])):
                        for price, qty in levels:
                            book.set(bid, price, qty, [price, qty])
                    book.extra = {"seq": d["data"]["seq"], "ts": d["ts"], "cts": d.get("cts")}
                else:
                    events.append(WsEvent("book", key, topic, d))
            self.replays[f"bybit-{cat}"] = Replay(BYBIT_WS, f"/v5/public/{cat}", events)

        events, counts = [], {}
        for d in okx_ws_messages():
            inst, channel = d["arg"]["instId"], d["arg"]["channel"]
            topic = f"{channel}:{inst}"
            if channel == "trades":
                key = ("okx", inst)
                counts[key] = counts.get(key, 0) + len(d["data"])
                events.append(WsEvent("trades", key, topic, d, counts[key]))
            elif d.get("action") == "snapshot" and ("okx", inst) not in self.ws_books:
                # The 2022 recording predates seqId/prevSeqId: the server numbers the messages.
                data = d["data"][0]
                book = self.ws_books[("okx", inst)] = LevelBook(seq=1_000_000)
                for bid, levels in ((True, data["bids"]), (False, data["asks"])):
                    for level in levels:
                        book.set(bid, level[0], level[1], level)
                book.extra = {"ts": data["ts"]}
            else:
                events.append(WsEvent("book", ("okx", inst), topic, d))
        self.replays["okx"] = Replay(OKX_WS, "/ws/v5/public", events)

        events, counts = [], {}
        for d in coinbase_ws_messages():
            product = d["_product"]
            if d["channel"] == "market_trades":
                key = ("coinbase", product)
                trades = [t for ev in d["events"] for t in reversed(ev["trades"])]  # sent newest first
                if d["events"][0]["type"] == "snapshot":
                    self.trades[key] = TradeStream(key, trades, published=len(trades), id_key="trade_id")
                    counts[key] = len(trades)
                    continue
                self.trades[key].records.extend(trades)
                counts[key] += len(trades)
                events.append(WsEvent("trades", key, f"market_trades:{product}", d, counts[key]))
            elif d["events"][0]["type"] == "snapshot" and ("coinbase", product) not in self.ws_books:
                book = self.ws_books[("coinbase", product)] = LevelBook()
                for u in d["events"][0]["updates"]:
                    book.set(u["side"] == "bid", u["price_level"], u["new_quantity"], u)
            else:
                events.append(WsEvent("book", ("coinbase", product), f"level2:{product}", d))
        self.replays["coinbase"] = Replay(COINBASE_WS, "/", events)

        # Kraken: the REST recording's trades framed as WS v2 trade updates, one per taker order
        # (the trades of one timestamp).
        stream = self.trades[("kraken", "XBTUSDT")]
        events, group = [], []
        for i, row in enumerate(stream.records):
            group.append(row)
            if i + 1 == len(stream.records) or stream.records[i + 1][2] != row[2]:
                msg = {"channel": "trade", "type": "update", "data": [kraken_v2_trade(r, "BTC/USDT") for r in group]}
                events.append(WsEvent("trades", ("kraken", "XBTUSDT"), "trade:BTC/USDT", msg, i + 1))
                group = []
        self.replays["kraken"] = Replay(KRAKEN_WS, "/v2", events)

    def publish_ws(self, name: str, n: int | None = None) -> int:
        """Publish the next ``n`` (default: all remaining) recorded messages of a replay; returns how many."""
        return self.call(self._publish_ws, name, n)

    async def _publish_ws(self, name: str, n: int | None) -> int:
        replay = self.replays[name]
        count = replay.remaining() if n is None else min(n, replay.remaining())
        for _ in range(count):
            ev = replay.events[replay.published]
            replay.published += 1
            await self._publish_event(replay, ev)
        return count

    async def _publish_event(self, replay: Replay, ev: WsEvent) -> None:
        msg = ev.msg
        if ev.kind == "trades":
            stream = self.trades[ev.key]
            with self.lock:
                stream.published = max(stream.published, ev.upto)
        else:
            book = self.ws_books[ev.key]
            if replay.ws_host == BYBIT_WS:
                data = msg["data"]
                for bid, levels in ((True, data["b"]), (False, data["a"])):
                    for price, qty in levels:
                        book.set(bid, price, qty, [price, qty])
                book.seq = data["u"]
                book.extra = {"seq": data["seq"], "ts": msg["ts"], "cts": msg.get("cts")}
            elif replay.ws_host == OKX_WS:
                data = msg["data"][0]
                for bid, levels in ((True, data["bids"]), (False, data["asks"])):
                    for level in levels:
                        book.set(bid, level[0], level[1], level)
                prev, book.seq = book.seq, book.seq + 1
                book.extra = {"ts": data["ts"]}
                msg = {**msg, "data": [{**data, "prevSeqId": prev, "seqId": book.seq}]}
            else:  # Coinbase
                for ev_ in msg["events"]:
                    for u in ev_["updates"]:
                        book.set(u["side"] == "bid", u["price_level"], u["new_quantity"], u)
            if self.skip_depth and self.skip_depth_topic in (None, ev.topic):
                self.skip_depth -= 1
                return
        text = json.dumps({k: v for k, v in msg.items() if not k.startswith("_")})
        for c in list(self.clients):
            if c.ws_host == replay.ws_host and c.path == replay.path and ev.topic in c.streams:
                await self._send(c, self._sequenced(c, text) if replay.ws_host == COINBASE_WS else text)

    @staticmethod
    def _sequenced(client: _Client, text: str) -> str:
        """Coinbase numbers every message of a connection (sequence_num)."""
        msg = json.loads(text)
        msg["sequence_num"] = client.seq
        client.seq += 1
        return json.dumps(msg)

    def ws_subscribers(self, ws_host: str, topic: str) -> int:
        return sum(1 for c in self.clients if c.ws_host == ws_host and topic in c.streams and not c.ws.closed)

    def publish_all(self) -> None:
        with self.lock:
            for s in self.trades.values():
                s.published = len(s.records)

    def stream(self, *key) -> TradeStream:
        return self.trades[tuple(key)]

    # ------------------------------------------------------------------ lifecycle

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> ExchangeServer:
        self._thread = threading.Thread(target=self._run, name="exchangeserver", daemon=True)
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("exchange server did not start")
        return self

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_route("*", "/{host}/{path:.*}", self._dispatch)
        app.router.add_route("*", "/{host}", self._dispatch)  # wss://advanced-trade-ws.coinbase.com
        self._runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._runner.cleanup())
        self.loop.close()

    def stop(self) -> None:
        if self.loop and self.loop.is_running():
            self.call(self._close_all)
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread:
            self._thread.join(10)

    def call(self, coro_fn, *args):
        """Run a coroutine function on the server loop from another thread and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro_fn(*args), self.loop).result(30)

    # ------------------------------------------------------------------ faults and control

    def fault(self, path_part: str, *specs: dict) -> None:
        """Answer the next requests whose path contains ``path_part`` with these specs, in order:
        {"status": 429, "headers": {...}, "body": ...} and/or {"delay": seconds}."""
        self.faults.setdefault(path_part, deque()).extend(specs)

    def drop_connections(self) -> None:
        self.call(self._close_all)

    async def _close_all(self) -> None:
        for c in list(self.clients):
            await c.ws.close()
        self.clients.clear()

    def skip_next_depth(self, n: int = 1, topic: str | None = None) -> None:
        """Sequence gap: the next n depth diffs (of ``topic`` only, for the replays, if given) are
        applied to the server's book but never sent."""
        self.skip_depth += n
        self.skip_depth_topic = topic

    def inject(self, host: str, stream: str, payload) -> None:
        """Send a raw message (dict or text) to every client subscribed to ``stream`` on ``host``."""
        self.call(self._send_raw, host, stream, payload)

    async def _send_raw(self, host: str, stream: str, payload) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        for c in list(self.clients):
            if c.host == host and stream in c.streams:
                await self._send(c, text)

    async def _send(self, client: _Client, text: str) -> None:
        """Send, and forget a client whose peer died (a killed collector) instead of failing."""
        if client.ws.closed:
            return
        try:
            async with client.lock:
                await client.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            if client in self.clients:
                self.clients.remove(client)

    def play(self, *, keys: list[tuple], rate: float, with_depth: bool = True) -> None:
        """Publish the streams' messages at ``rate`` messages/s each (in a task on the server loop)."""
        self._playing = keys
        self.loop.call_soon_threadsafe(lambda: setattr(self, "_play_task",
                                                       self.loop.create_task(self._play(keys, rate, with_depth))))

    def play_done(self) -> bool:
        return all(self.trades[k].published >= len(self.trades[k].records) for k in self._playing)

    async def _play(self, keys: list[tuple], rate: float, with_depth: bool) -> None:
        self._playing = keys
        start = time.monotonic()
        sent = 0
        while True:
            progressed = False
            target = int((time.monotonic() - start) * rate) + 1
            while sent < target:
                for key in keys:
                    if await self._publish_one(key, with_depth):
                        progressed = True
                sent += 1
            if not any(self.trades[k].published < len(self.trades[k].records) for k in keys):
                return
            await asyncio.sleep(0.002 if progressed else 0.01)

    async def _publish_one(self, key: tuple, with_depth: bool) -> bool:
        s = self.trades[key]
        if s.published >= len(s.records):
            return False
        rec = s.records[s.published]
        if self.restamp:
            rec["T"] = int(time.time() * 1000)
        with self.lock:
            s.published += 1
        host, symbol = key[0], key[-1]
        stream = f"{symbol.lower()}@aggTrade"
        subscribers = [c for c in self.clients if c.host == host and stream in c.streams]
        if subscribers:
            msg = json.dumps({"e": "aggTrade", "E": rec["T"], "s": symbol, **rec})
            for c in subscribers:
                await self._send(c, msg)
        book = self.books.get(key)
        # Depth diffs keep pace with trades at their recorded ratio.
        if with_depth and book is not None and book.published < len(book.diffs):
            due = len(book.diffs) * s.published // len(s.records)
            while book.published < due:
                await self._publish_diff(host, book)
        return True

    async def _publish_diff(self, host: str, book: BookStream) -> None:
        diff = book.diffs[book.published]
        book.published += 1
        book.apply(diff)
        if self.skip_depth:
            self.skip_depth -= 1
            return
        msg = json.dumps(diff)
        for c in list(self.clients):
            if c.host == host and any(x.startswith(f"{book.symbol.lower()}@depth") for x in c.streams):
                await self._send(c, msg)

    def publish_depth(self, key: tuple, n: int) -> None:
        async def go():
            book = self.books[key]
            for _ in range(n):
                if book.published < len(book.diffs):
                    await self._publish_diff(key[0], book)
        self.call(go)

    def _control(self, path: str, q: dict) -> dict:
        keys = [tuple(k.split(":")) for k in q.get("keys", "").split(",") if k]
        if path == "/play":
            self._playing = keys
            self._play_task = self.loop.create_task(self._play(keys, float(q["rate"]), q.get("depth") == "1"))
        if path == "/stop" and self._play_task is not None:  # pause; the next play continues from here
            self._play_task.cancel()
        if path == "/loop":  # repeat each stream n times with fresh ids (for long benchmarks)
            for key in keys:
                self.trades[key].records = looped(self.trades[key].records, int(q["times"]))
        return {"published": {":".join(k): self.trades[k].published for k in keys},
                "total": {":".join(k): len(self.trades[k].records) for k in keys},
                "subscribers": len(self.clients)}

    def subscribers(self, host: str, stream: str) -> int:
        return sum(1 for c in self.clients if c.host == host and stream in c.streams and not c.ws.closed)

    # ------------------------------------------------------------------ HTTP + WS dispatch

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        host = request.match_info["host"]
        path = "/" + request.match_info.get("path", "")
        if host == "_control":  # for a server in another process (benchmarks)
            return web.json_response(self._control(path, dict(request.query)))
        self.requests.append((host, path + ("?" + request.query_string if request.query_string else "")))
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, host, path)
        for part, queue in self.faults.items():
            if part in f"{host}{path}" and queue:
                spec = queue.popleft()
                if spec.get("delay"):
                    await asyncio.sleep(spec["delay"])
                if "status" in spec or "body" in spec:
                    body = spec.get("body", {"code": -1, "msg": "scripted fault"})
                    text = body if isinstance(body, str) else json.dumps(body)
                    return web.Response(status=spec.get("status", 200), text=text, headers=spec.get("headers"),
                                        content_type="application/json")
                break
        handler = ROUTES.get((host, path))
        query = dict(request.query)
        for (prefix_host, pattern), fn in PATTERN_ROUTES.items():
            match = pattern.fullmatch(path) if prefix_host == host and handler is None else None
            if match:
                handler, query = fn, {**query, **match.groupdict()}
        if handler is None:
            return web.json_response({"code": -1121, "msg": f"no route {host}{path}"}, status=404)
        try:
            result = handler(self, query)
        except KeyError as exc:
            return web.json_response({"code": -1121, "msg": f"Invalid symbol {exc}"}, status=400)
        return web.json_response(result)

    async def _websocket(self, request: web.Request, host: str, path: str) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        client = _Client(ws, WS_HOSTS.get(host, host), host, path)
        self.clients.append(client)
        handler = {BYBIT_WS: self._ws_bybit, OKX_WS: self._ws_okx, COINBASE_WS: self._ws_coinbase,
                   KRAKEN_WS: self._ws_kraken}.get(host)
        if host == KRAKEN_WS:
            await self._send(client, json.dumps({"channel": "status", "type": "update", "data": [{
                "api_version": "v2", "connection_id": id(client), "system": "online", "version": "2.0.10"}]}))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if msg.data == "ping":  # OKX's text keepalive
                    self.pings[host] = self.pings.get(host, 0) + 1
                    if self.answer_pings:
                        await self._send(client, "pong")
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                self.ws_received.append((host, data))
                if handler is not None:
                    await handler(client, data)
                elif data.get("method") == "SUBSCRIBE":  # Binance
                    client.streams.update(data.get("params", []))
                    await ws.send_str(json.dumps({"result": None, "id": data.get("id")}))
                elif data.get("method") == "UNSUBSCRIBE":
                    client.streams.difference_update(data.get("params", []))
                    await ws.send_str(json.dumps({"result": None, "id": data.get("id")}))
                elif data.get("op") == "subscribe":  # Bybit
                    client.streams.update(data.get("args", []))
                    await ws.send_str(json.dumps({"success": True, "ret_msg": "", "op": "subscribe",
                                                  "req_id": data.get("req_id", ""), "conn_id": "local"}))
                elif data.get("op") == "ping":
                    await ws.send_str(json.dumps({"success": True, "ret_msg": "pong", "op": "ping"}))
        finally:
            if client in self.clients:
                self.clients.remove(client)
        return ws


    # ------------------------------------------------------------------ Bybit, OKX, Coinbase, Kraken WS protocols

    def _ping(self, host: str) -> bool:
        self.pings[host] = self.pings.get(host, 0) + 1
        return self.answer_pings

    async def _ws_bybit(self, client: _Client, data: dict) -> None:
        """v5 public: {"op": "subscribe", "req_id", "args": [topic, ...]}; an orderbook topic is
        answered with the book's snapshot, then its deltas (u rising by one per message)."""
        op, req_id = data.get("op"), data.get("req_id", "")
        ack = {"success": True, "ret_msg": "", "conn_id": f"local-{id(client)}", "req_id": req_id, "op": op}
        if op == "ping":
            if self._ping(BYBIT_WS):
                await self._send(client, json.dumps({**ack, "ret_msg": "pong"}))
            return
        topics = data.get("args") or []
        if op == "unsubscribe":
            client.streams.difference_update(topics)
            await self._send(client, json.dumps(ack))
            return
        if op != "subscribe":
            return
        cat = client.path.rsplit("/", 1)[-1]
        for topic in topics:
            kind, _, symbol = topic.rpartition(".")
            error = None
            if topic in client.streams:
                error = f"error:already subscribed,topic:{topic}"
            elif kind.startswith("orderbook.") and (kind != "orderbook.200"
                                                    or ("bybit", cat, symbol) not in self.ws_books):
                error = f"error:topic:{topic} not recorded (only orderbook.200 is)"
            if error:
                await self._send(client, json.dumps({**ack, "success": False, "ret_msg": error}))
                return
        client.streams.update(topics)
        snapshots = []
        for topic in topics:
            symbol = topic.rpartition(".")[2]
            if topic.startswith("orderbook."):
                book = self.ws_books[("bybit", cat, symbol)]
                snapshots.append({"topic": topic, "type": "snapshot", "ts": book.extra["ts"], "data": {
                    "s": symbol, "b": book.top(True, 200), "a": book.top(False, 200), "u": book.seq,
                    "seq": book.extra["seq"]}, "cts": book.extra["cts"]})
        await self._send(client, json.dumps(ack))
        for snap in snapshots:
            await self._send(client, json.dumps(snap))

    async def _ws_okx(self, client: _Client, data: dict) -> None:
        """v5 public: {"op": "subscribe", "args": [{"channel", "instId"}]}; ``books`` is answered with
        the book's snapshot (prevSeqId -1), then updates chained by prevSeqId/seqId."""
        op = data.get("op")
        if op not in ("subscribe", "unsubscribe"):
            return
        for arg in data.get("args") or []:
            channel = arg.get("channel")
            topic = f"{channel}:{arg.get('instId') or arg.get('instType')}"
            ack = json.dumps({"event": op, "arg": arg, "connId": f"{id(client) % 10**8:08x}"})
            if op == "unsubscribe":
                client.streams.discard(topic)
                await self._send(client, ack)
                continue
            book = self.ws_books.get(("okx", arg.get("instId")))
            if (channel == "books" and book is None) or channel not in ("books", "trades", "liquidation-orders"):
                await self._send(client, json.dumps({"event": "error", "code": "60018", "msg": f"{topic} not recorded",
                                                     "connId": "local"}))
                continue
            client.streams.add(topic)
            await self._send(client, ack)
            if channel == "books":
                bids, asks = book.top(True, 400), book.top(False, 400)
                await self._send(client, json.dumps({"arg": arg, "action": "snapshot", "data": [{
                    "asks": asks, "bids": bids, "ts": book.extra["ts"], "checksum": okx_checksum(bids, asks),
                    "prevSeqId": -1, "seqId": book.seq}]}))

    def _coinbase_msg(self, client: _Client, channel: str, events: list) -> str:
        msg = {"channel": channel, "client_id": "", "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
               "sequence_num": client.seq, "events": events}
        client.seq += 1
        return json.dumps(msg)

    async def _ws_coinbase(self, client: _Client, data: dict) -> None:
        """Advanced Trade: {"type": "subscribe", "product_ids", "channel"}; market_trades starts with
        a snapshot of the last 100 trades, level2 (sent as l2_data) with the whole book."""
        channel, products = data.get("channel"), data.get("product_ids") or []
        if data.get("type") == "unsubscribe":
            client.streams.difference_update(f"{channel}:{p}" for p in products)
        elif data.get("type") == "subscribe":
            for product in products:
                topic = f"{channel}:{product}"
                if channel == "market_trades" and ("coinbase", product) in self.trades:
                    client.streams.add(topic)
                    last = self.trades[("coinbase", product)].visible()[-100:]
                    await self._send(client, self._coinbase_msg(client, "market_trades", [
                        {"type": "snapshot", "trades": list(reversed(last))}]))
                elif channel == "level2" and ("coinbase", product) in self.ws_books:
                    client.streams.add(topic)
                    book = self.ws_books[("coinbase", product)]
                    await self._send(client, self._coinbase_msg(client, "l2_data", [
                        {"type": "snapshot", "product_id": product,
                         "updates": book.top(True) + book.top(False)}]))
                else:
                    await self._send(client, json.dumps({"type": "error", "message": f"{topic} not recorded"}))
                    return
        else:
            return
        subs: dict[str, list] = {}
        for topic in sorted(client.streams):
            name, _, product = topic.partition(":")
            subs.setdefault(name, []).append(product)
        await self._send(client, self._coinbase_msg(client, "subscriptions", [{"subscriptions": subs}]))

    async def _ws_kraken(self, client: _Client, data: dict) -> None:
        """v2: {"method": "subscribe", "params": {"channel": "trade", "symbol": [...]}, "req_id"}."""
        method, req_id = data.get("method"), data.get("req_id")
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        if method == "ping":
            if self._ping(KRAKEN_WS):
                await self._send(client, json.dumps({"method": "pong", "req_id": req_id, "time_in": now,
                                                     "time_out": now}))
            return
        if method not in ("subscribe", "unsubscribe"):
            return
        params = data.get("params") or {}
        for symbol in params.get("symbol") or []:
            topic = f"{params.get('channel')}:{symbol}"
            ok = topic == "trade:BTC/USDT"
            if ok and method == "subscribe":
                client.streams.add(topic)
            else:
                client.streams.discard(topic)
            reply = {"method": method, "req_id": req_id, "success": ok, "time_in": now, "time_out": now}
            if ok:
                reply["result"] = {"channel": params.get("channel"), "snapshot": bool(params.get("snapshot")),
                                   "symbol": symbol}
            else:
                reply["error"] = f"Currency pair not supported {symbol}"
            await self._send(client, json.dumps(reply))


# --------------------------------------------------------------------------- REST handlers


def _limit(q: dict, default: int, maximum: int) -> int:
    return min(int(q.get("limit", default)), maximum)


def _agg_trades(server: ExchangeServer, host: str, q: dict) -> list[dict]:
    stream = server.trades[(host, q["symbol"])]
    rows = stream.visible()
    limit = _limit(q, 500, 1000)
    if "fromId" in q:
        start = int(q["fromId"])
        rows = [r for r in rows if r["a"] >= start]
        return rows[:limit]
    if "startTime" in q:
        lo = int(q["startTime"])
        hi = int(q.get("endTime", lo + 3_600_000))
        rows = [r for r in rows if lo <= r["T"] <= hi]
        return rows[:limit]
    return rows[-limit:]


def _depth(server: ExchangeServer, host: str, q: dict) -> dict:
    book = server.books.get((host, q["symbol"]))
    if book is None:
        return server.fapi_depth[q["symbol"]]
    return book.depth(_limit(q, 100, 5000))


def _funding_history(server: ExchangeServer, q: dict) -> list[dict]:
    rows = server.funding[q["symbol"]]
    start = int(q.get("startTime", 0))
    out = [{"symbol": q["symbol"], "fundingTime": r[0], "fundingRate": format(Decimal(repr(r[1])), "f"),
            "markPrice": ""} for r in rows if r[0] >= start]
    return out[: _limit(q, 100, 1000)]


def _premium_index(server: ExchangeServer, q: dict) -> dict:
    """premiumIndex (documented shape); the rate is the last recorded funding of the symbol."""
    rows = server.funding.get(q["symbol"]) or [[0, 0.0001]]
    last = rows[-1]
    now = int(time.time() * 1000)
    return {"symbol": q["symbol"], "markPrice": "0.99", "indexPrice": "0.99", "estimatedSettlePrice": "0.99",
            "lastFundingRate": format(Decimal(repr(last[1])), "f"), "interestRate": "0.00010000",
            "nextFundingTime": last[0] + 8 * 3_600_000, "time": now}


def _open_interest(server: ExchangeServer, q: dict) -> dict:
    rows = server.oi_hist.get(q["symbol"])
    oi = rows[-1]["sumOpenInterest"] if rows else "59891.732"
    return {"symbol": q["symbol"], "openInterest": oi, "time": int(time.time() * 1000)}


def _oi_hist(server: ExchangeServer, q: dict) -> list[dict]:
    start = int(q.get("startTime", 0))
    return [r for r in server.oi_hist.get(q["symbol"], []) if r["timestamp"] >= start][: _limit(q, 30, 500)]


def _taker_ratio(server: ExchangeServer, q: dict) -> list[dict]:
    start = int(q.get("startTime", 0))
    return [r for r in server.taker_ratio.get(q["symbol"], []) if r["timestamp"] >= start][: _limit(q, 30, 500)]


def _bybit_instruments(server: ExchangeServer, q: dict) -> dict:
    return server.bybit["instruments"].get(q.get("category", "linear"),
                                           {"retCode": 0, "retMsg": "OK", "result": {"list": []}})


def _bybit_recent(server: ExchangeServer, q: dict) -> dict:
    stream = server.trades[("bybit", q["category"], q["symbol"])]
    rows = stream.visible()[-_limit(q, 60, 1000):]
    out = [{"execId": r["i"], "symbol": r["s"], "price": r["p"], "size": r["v"], "side": r["S"], "time": str(r["T"]),
            "isBlockTrade": r.get("BT", False), "seq": str(r.get("seq", ""))} for r in reversed(rows)]
    return {"retCode": 0, "retMsg": "OK", "result": {"category": q["category"], "list": out},
            "time": int(time.time() * 1000)}


def _bybit_tickers(server: ExchangeServer, q: dict) -> dict:
    ts, data = server.bybit["tickers"][(q.get("category", "linear"), q["symbol"])][-1]
    return {"retCode": 0, "retMsg": "OK", "result": {"category": q.get("category", "linear"), "list": [data]},
            "time": ts}


def _bybit_open_interest(server: ExchangeServer, q: dict) -> dict:
    """/v5/market/open-interest (documented shape) from the recorded tickers' openInterest."""
    rows = [{"openInterest": d["openInterest"], "timestamp": str(ts)}
            for ts, d in server.bybit["tickers"][(q.get("category", "linear"), q["symbol"])] if "openInterest" in d]
    return {"retCode": 0, "retMsg": "OK", "result": {"symbol": q["symbol"], "category": q.get("category", "linear"),
                                                     "list": list(reversed(rows)), "nextPageCursor": ""},
            "time": int(time.time() * 1000)}


def _okx_instruments(server: ExchangeServer, q: dict) -> dict:
    return okx_instruments(q.get("instType", "SPOT"))


def _okx_trades(server: ExchangeServer, q: dict) -> dict:
    rows = server.trades[("okx", q["instId"])].visible()
    return {"code": "0", "msg": "", "data": list(reversed(rows[-_limit(q, 100, 500):]))}


def _kraken_trades(server: ExchangeServer, q: dict) -> dict:
    stream = server.trades[("kraken", q["pair"])]
    rows = stream.visible()
    since = q.get("since")
    if since:
        cut = int(since) / 1e9 if len(since) > 12 else float(since)
        rows = [r for r in rows if r[2] > cut]
    rows = rows[: _limit({"limit": q.get("count", 1000)}, 1000, 1000)]
    last = str(int(rows[-1][2] * 1e9)) if rows else (since or server.kraken_last)
    return {"error": [], "result": {"XBTUSDT": [list(r) for r in rows], "last": last}}


def _iso_ms(text: str) -> int:
    """'2026-08-09T21:05:42.514318Z' -> epoch milliseconds (exact, from the digits)."""
    stamp, _, frac = text.rstrip("Z").partition(".")
    seconds = int(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())
    return seconds * 1000 + int((frac + "000")[:3])


def _coinbase_market_trades(server: ExchangeServer, q: dict) -> dict:
    """Advanced Trade public market trades: the latest ``limit`` published trades, newest first."""
    rows = server.trades[("coinbase", q["product_id"])].visible()
    if q.get("start"):
        rows = [r for r in rows if _iso_ms(r["time"]) >= int(q["start"]) * 1000]
    if q.get("end"):
        rows = [r for r in rows if _iso_ms(r["time"]) < (int(q["end"]) + 1) * 1000]
    rows = rows[-_limit(q, 100, 1000):]
    return {"trades": [{**r, "bid": "", "ask": ""} for r in reversed(rows)], "best_bid": "", "best_ask": ""}


def _coinbase_products(server: ExchangeServer, q: dict) -> dict:
    return coinbase_products() if q.get("product_type", "SPOT") == "SPOT" else {"products": [], "num_products": 0}


def _deribit_dvol(server: ExchangeServer, q: dict) -> dict:
    rows = [r for r in server.dvol.get(q["currency"], []) if int(q["start_timestamp"]) <= r[0]]
    return {"jsonrpc": "2.0", "result": {"data": rows, "continuation": None}, "usIn": 0, "usOut": 0}


def _deribit_summary(server: ExchangeServer, q: dict) -> dict:
    return {"jsonrpc": "2.0", "result": server.deribit_book.get(q["currency"], []),
            "usIn": int(time.time() * 1e6), "usOut": int(time.time() * 1e6)}


ROUTES = {
    (ExchangeServer.SPOT, "/api/v3/exchangeInfo"): lambda s, q: s.spot_info,
    (ExchangeServer.SPOT, "/api/v3/aggTrades"): lambda s, q: _agg_trades(s, ExchangeServer.SPOT, q),
    (ExchangeServer.SPOT, "/api/v3/depth"): lambda s, q: _depth(s, ExchangeServer.SPOT, q),
    (ExchangeServer.FAPI, "/fapi/v1/exchangeInfo"): lambda s, q: s.fapi_info,
    (ExchangeServer.FAPI, "/fapi/v1/aggTrades"): lambda s, q: _agg_trades(s, ExchangeServer.FAPI, q),
    (ExchangeServer.FAPI, "/fapi/v1/depth"): lambda s, q: _depth(s, ExchangeServer.FAPI, q),
    (ExchangeServer.FAPI, "/fapi/v1/fundingRate"): _funding_history,
    (ExchangeServer.FAPI, "/fapi/v1/premiumIndex"): _premium_index,
    (ExchangeServer.FAPI, "/fapi/v1/openInterest"): _open_interest,
    (ExchangeServer.FAPI, "/futures/data/openInterestHist"): _oi_hist,
    (ExchangeServer.FAPI, "/futures/data/takerlongshortRatio"): _taker_ratio,
    ("api.bybit.com", "/v5/market/instruments-info"): _bybit_instruments,
    ("api.bybit.com", "/v5/market/recent-trade"): _bybit_recent,
    ("api.bybit.com", "/v5/market/tickers"): _bybit_tickers,
    ("api.bybit.com", "/v5/market/open-interest"): _bybit_open_interest,
    ("www.okx.com", "/api/v5/public/instruments"): _okx_instruments,
    ("www.okx.com", "/api/v5/market/trades"): _okx_trades,
    ("api.kraken.com", "/0/public/AssetPairs"): lambda s, q: kraken_asset_pairs(),
    ("api.kraken.com", "/0/public/Assets"): lambda s, q: kraken_assets(),
    ("api.kraken.com", "/0/public/Trades"): _kraken_trades,
    ("api.coinbase.com", "/api/v3/brokerage/market/products"): _coinbase_products,
    ("api.coinbase.com", "/v2/currencies"): lambda s, q: coinbase_currencies("fiat"),
    ("api.coinbase.com", "/v2/currencies/crypto"): lambda s, q: coinbase_currencies("crypto"),
    ("api.coinbase.com", "/v2/exchange-rates"): lambda s, q: coinbase_currencies("rates"),
    ("www.deribit.com", "/api/v2/public/get_volatility_index_data"): _deribit_dvol,
    ("www.deribit.com", "/api/v2/public/get_book_summary_by_currency"): _deribit_summary,
}


# Paths with an id inside: (host, regex) -> handler; named groups join the query.
PATTERN_ROUTES = {
    ("api.coinbase.com", re.compile(r"/api/v3/brokerage/market/products/(?P<product_id>[A-Z0-9-]+)/ticker")):
        _coinbase_market_trades,
}


def main() -> None:
    """``python -m tests.exchangeserver --port N --rate R``: a standalone server for benchmarks."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--restamp", action="store_true")
    args = parser.parse_args()
    server = ExchangeServer(port=args.port, restamp=args.restamp).start()
    print(json.dumps({"port": server.port}), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
