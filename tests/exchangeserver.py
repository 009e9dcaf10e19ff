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
import threading
import time
from collections import deque
from dataclasses import dataclass, field
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


# WebSocket hosts -> the REST host whose streams they carry.
WS_HOSTS = {"stream.binance.com:9443": "api.binance.com", "fstream.binance.com": "fapi.binance.com",
            "stream.bybit.com": "api.bybit.com"}


class _Client:
    def __init__(self, ws: web.WebSocketResponse, host: str):
        self.ws = ws
        self.host = host
        self.streams: set[str] = set()


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
        self.injected: deque = deque()
        self.trades: dict[tuple, TradeStream] = {}
        self.books: dict[tuple, BookStream] = {}
        self._load(spot_files, with_eth)
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

    def skip_next_depth(self, n: int = 1) -> None:
        """Sequence gap: the next n depth diffs are applied to the server's book but never sent."""
        self.skip_depth += n

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
        path = "/" + request.match_info["path"]
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
        if handler is None:
            return web.json_response({"code": -1121, "msg": f"no route {host}{path}"}, status=404)
        try:
            result = handler(self, dict(request.query))
        except KeyError as exc:
            return web.json_response({"code": -1121, "msg": f"Invalid symbol {exc}"}, status=400)
        return web.json_response(result)

    async def _websocket(self, request: web.Request, host: str, path: str) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        client = _Client(ws, WS_HOSTS.get(host, host))
        self.clients.append(client)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if data.get("method") == "SUBSCRIBE":  # Binance
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
    ("www.deribit.com", "/api/v2/public/get_volatility_index_data"): _deribit_dvol,
    ("www.deribit.com", "/api/v2/public/get_book_summary_by_currency"): _deribit_summary,
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
