"""A local Esplora-compatible REST API and Ethereum JSON-RPC endpoint for the flow tests.

A real threaded HTTP server on 127.0.0.1 (free port) that the real clients talk to by base URL:

- Esplora: ``GET /api/blocks/tip/height``, ``/api/address/:a``, ``/api/address/:a/txs``,
  ``/api/address/:a/txs/chain[/:last_seen_txid]`` (mempool first, then 25 confirmed per page, newest
  first, as electrs pages them) and ``/api/tx/:txid/status``; transactions in exactly the JSON shape
  of Esplora's ``GET /api/tx/:txid`` (built from the real sample in
  shared/data/esplora-tx-format-samples/).
- JSON-RPC on ``POST /rpc`` (single and batch): ``eth_blockNumber``, ``eth_getBlockByNumber``,
  ``eth_getLogs`` (address and topic filters honoured, a result cap answered with the usual -32005
  "more than N results" error), with blocks whose hashes tests can change to stage a reorg.
- Scripted faults: any status with headers (429 + Retry-After, 500), slow responses (client
  timeouts) and malformed bodies, each matching a path pattern a given number of times.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from apps.flows.addresses import btc_address_kind

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "esplora-tx-format-samples"
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
PAGE = 25
MEMPOOL_PAGE = 50
_SCRIPT_TYPES = {"p2pkh": "p2pkh", "p2sh": "p2sh", "p2wpkh": "v0_p2wpkh", "p2wsh": "v0_p2wsh", "p2tr": "v1_p2tr"}


def sample(name: str = "mempool_tx02_api_tx.json") -> dict:
    return json.loads((SAMPLES / name).read_text())


def txid_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def block_hash(height: int, salt: str = "") -> str:
    return hashlib.sha256(f"block {height} {salt}".encode()).hexdigest()


def esplora_tx(name: str, vin: list[tuple[str | None, int]], vout: list[tuple[str | None, int]], *,
               height: int | None = None, block_time: int | None = None, fee: int | None = None) -> dict:
    """A transaction shaped exactly like the real Esplora sample (same keys, same nesting)."""
    template = sample()
    tx = copy.deepcopy(template)
    txid = txid_of(name)

    def script(address: str | None, value: int) -> dict:
        out = copy.deepcopy(template["vout"][0])
        if address is None:
            out.update(scriptpubkey="6a", scriptpubkey_asm="OP_RETURN", scriptpubkey_type="op_return")
            out.pop("scriptpubkey_address", None)
        else:
            out["scriptpubkey_type"] = _SCRIPT_TYPES.get(btc_address_kind(address) or "", "unknown")
            out["scriptpubkey_address"] = address
        out["value"] = value
        return out

    vin_items = []
    for i, (address, value) in enumerate(vin):
        item = copy.deepcopy(template["vin"][0])
        item["txid"] = txid_of(f"{name} prev {i}")
        item["vout"] = i
        item["prevout"] = script(address, value)
        vin_items.append(item)
    tx.update(txid=txid, vin=vin_items, vout=[script(a, v) for a, v in vout])
    tx["fee"] = sum(v for _, v in vin) - sum(v for _, v in vout) if fee is None else fee
    tx["status"] = {"confirmed": False}
    if height is not None:
        tx["status"] = {"confirmed": True, "block_height": height, "block_hash": block_hash(height),
                        "block_time": block_time}
    return tx


@dataclass
class Fault:
    """Answer requests whose path matches ``pattern`` (``times`` times) with a scripted failure."""

    pattern: str
    status: int = 200
    body: bytes | None = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    times: int = 1
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and (self.method in (None, method)) and re.search(self.pattern, path) is not None


class ChainState:
    """Everything the server answers from; tests mutate it between runs (under ``lock``)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.tip = 850_000
        self.txs: dict[str, dict] = {}
        self.seq: dict[str, int] = {}
        self._next = 0
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.eth_tip = 0
        self.eth_blocks: dict[int, tuple[str, int]] = {}
        self.eth_logs: list[dict] = []
        self.eth_max_logs = 10_000
        self.rpc_calls: list[tuple[str, list]] = []
        self.etherscan_txs: dict[str, list[dict]] = {}

    # --- Bitcoin ---
    def add(self, *txs: dict) -> None:
        with self.lock:
            for tx in txs:
                if tx["txid"] not in self.seq:
                    self.seq[tx["txid"]] = self._next
                    self._next += 1
                self.txs[tx["txid"]] = tx

    def confirm(self, txid: str, height: int, block_time: int) -> None:
        with self.lock:
            self.txs[txid]["status"] = {"confirmed": True, "block_height": height, "block_hash": block_hash(height),
                                        "block_time": block_time}

    def drop(self, txid: str) -> None:
        with self.lock:
            self.txs.pop(txid)

    def history(self, address: str) -> tuple[list[dict], list[dict]]:
        """(mempool txs, confirmed txs) touching ``address``, newest first."""
        with self.lock:
            mine = [tx for tx in self.txs.values()
                    if any(v.get("prevout", {}).get("scriptpubkey_address") == address for v in tx["vin"])
                    or any(o.get("scriptpubkey_address") == address for o in tx["vout"])]
            mempool = sorted((t for t in mine if not t["status"]["confirmed"]), key=lambda t: -self.seq[t["txid"]])
            chain = sorted((t for t in mine if t["status"]["confirmed"]),
                           key=lambda t: (-t["status"]["block_height"], -self.seq[t["txid"]]))
            return mempool, chain

    def address_stats(self, address: str) -> dict:
        mempool, chain = self.history(address)

        def stats(txs):
            funded = [o["value"] for t in txs for o in t["vout"] if o.get("scriptpubkey_address") == address]
            spent = [v["prevout"]["value"] for t in txs for v in t["vin"]
                     if v.get("prevout", {}).get("scriptpubkey_address") == address]
            return {"funded_txo_count": len(funded), "funded_txo_sum": sum(funded), "spent_txo_count": len(spent),
                    "spent_txo_sum": sum(spent), "tx_count": len(txs)}

        return {"address": address, "chain_stats": stats(chain), "mempool_stats": stats(mempool)}

    # --- Ethereum ---
    def eth_chain(self, first: int, last: int, *, start_time: int = 1_719_000_000, salt: str = "") -> None:
        with self.lock:
            for h in range(first, last + 1):
                self.eth_blocks[h] = ("0x" + block_hash(h, salt), start_time + (h - first) * 12)
            self.eth_tip = max(self.eth_tip, last)

    def eth_reorg(self, from_height: int, *, salt: str = "reorg") -> None:
        """Every block from ``from_height`` up gets a new hash; logs in them are dropped (add new ones)."""
        with self.lock:
            for h in [h for h in self.eth_blocks if h >= from_height]:
                self.eth_blocks[h] = ("0x" + block_hash(h, salt), self.eth_blocks[h][1])
            self.eth_logs = [lg for lg in self.eth_logs if lg["height"] < from_height]

    def eth_log(self, *, height: int, token: str, sender: str, receiver: str, value: int, tx: str,
                index: int = 0) -> str:
        with self.lock:
            tx_hash = "0x" + hashlib.sha256(tx.encode()).hexdigest()
            self.eth_logs.append({"height": height, "token": token.lower(), "from": sender.lower(),
                                  "to": receiver.lower(), "value": value, "tx": tx_hash, "index": index})
            return f"{tx_hash}:{index}"


def _word(address: str) -> str:
    return "0x" + "0" * 24 + address[2:]


def _match_topic(want, have: str) -> bool:
    if want is None:
        return True
    if isinstance(want, list):
        return have in [w.lower() for w in want]
    return have == want.lower()


class _Handler(BaseHTTPRequestHandler):
    server_version = "flowserver/1"
    state: ChainState

    def log_message(self, format, *args):  # quiet: requests are recorded in state.requests
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json", headers: dict | None = None):
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def _json(self, obj, status: int = 200):
        self._send(status, json.dumps(obj).encode())

    def _fault(self, method: str) -> Fault | None:
        with self.state.lock:
            self.state.requests.append((method, self.path))
            for fault in self.state.faults:
                if fault.matches(method, self.path):
                    fault.times -= 1
                    return fault
        return None

    def _apply(self, fault: Fault) -> bool:
        """Sleep for a slow fault; answer with the fault's status/body. True when the request is answered."""
        if fault.delay:
            time.sleep(fault.delay)
        if fault.body is None and fault.status == 200:
            return False
        self._send(fault.status, fault.body if fault.body is not None else b"error", headers=fault.headers)
        return True

    def do_GET(self):
        fault = self._fault("GET")
        if fault and self._apply(fault):
            return
        path = self.path.split("?")[0]
        if path == "/etherscan/v2/api":
            return self._etherscan()
        if not path.startswith("/api/"):
            return self._send(404, b"not found", "text/plain")
        parts = path[len("/api/"):].strip("/").split("/")
        s = self.state
        if parts == ["blocks", "tip", "height"]:
            return self._send(200, str(s.tip).encode(), "text/plain")
        if len(parts) == 3 and parts[0] == "tx" and parts[2] == "status":
            tx = s.txs.get(parts[1])
            return self._json(tx["status"]) if tx else self._send(404, b"Transaction not found", "text/plain")
        if parts[0] == "address" and len(parts) >= 2:
            address = parts[1]
            if len(parts) == 2:
                return self._json(s.address_stats(address))
            mempool, chain = s.history(address)
            if parts[2:] == ["txs"]:
                return self._json(mempool[:MEMPOOL_PAGE] + chain[:PAGE])
            if parts[2:3] == ["txs"] and parts[3:4] == ["chain"]:
                if len(parts) == 4:
                    return self._json(chain[:PAGE])
                ids = [t["txid"] for t in chain]
                if parts[4] not in ids:
                    return self._send(400, b"Invalid last_seen_txid", "text/plain")
                at = ids.index(parts[4]) + 1
                return self._json(chain[at:at + PAGE])
        return self._send(404, b"not found", "text/plain")

    def _etherscan(self):
        """Etherscan's account txlist: status "1" with rows, or "0" with "No transactions found"."""
        query = dict(parse_qsl(urlsplit(self.path).query))
        if not query.get("apikey"):
            return self._json({"status": "0", "message": "NOTOK", "result": "Missing/Invalid API Key"})
        lo, hi = int(query.get("startblock", 0)), int(query.get("endblock", 99_999_999))
        offset = int(query.get("offset", 1000))
        with self.state.lock:
            rows = [r for r in self.state.etherscan_txs.get(query.get("address", "").lower(), [])
                    if lo <= int(r["blockNumber"]) <= hi][:offset]
        if not rows:
            return self._json({"status": "0", "message": "No transactions found", "result": []})
        return self._json({"status": "1", "message": "OK", "result": rows})

    def do_POST(self):
        fault = self._fault("POST")
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if fault and self._apply(fault):
            return
        if self.path != "/rpc":
            return self._send(404, b"not found", "text/plain")
        try:
            payload = json.loads(raw)
        except ValueError:
            return self._json({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}})
        if isinstance(payload, list):
            return self._json([self._rpc(p) for p in payload])
        return self._json(self._rpc(payload))

    def _rpc(self, call: dict) -> dict:
        s = self.state
        method, params, cid = call.get("method"), call.get("params", []), call.get("id")
        with s.lock:
            s.rpc_calls.append((method, params))
            if method == "eth_blockNumber":
                result = hex(s.eth_tip)
            elif method == "eth_getBlockByNumber":
                h = int(params[0], 16)
                block = s.eth_blocks.get(h) if h <= s.eth_tip else None
                parent = s.eth_blocks.get(h - 1, ("0x" + "00" * 32, 0))[0]
                result = None if block is None else {"number": hex(h), "hash": block[0], "parentHash": parent,
                                                     "timestamp": hex(block[1]), "transactions": []}
            elif method == "eth_getLogs":
                flt = params[0]
                lo, hi = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
                tokens = {a.lower() for a in flt.get("address") or []}
                topics = flt.get("topics") or []
                out = []
                for lg in s.eth_logs:
                    if not lo <= lg["height"] <= min(hi, s.eth_tip) or (tokens and lg["token"] not in tokens):
                        continue
                    have = [TRANSFER_TOPIC, _word(lg["from"]), _word(lg["to"])]
                    if all(_match_topic(want, have[i]) for i, want in enumerate(topics[:3])):
                        out.append({
                            "address": lg["token"], "topics": have, "data": "0x" + f"{lg['value']:064x}",
                            "blockNumber": hex(lg["height"]), "blockHash": s.eth_blocks[lg["height"]][0],
                            "transactionHash": lg["tx"], "transactionIndex": "0x0", "logIndex": hex(lg["index"]),
                            "removed": False,
                        })
                if len(out) > s.eth_max_logs:
                    return {"jsonrpc": "2.0", "id": cid, "error": {
                        "code": -32005, "message": f"query returned more than {s.eth_max_logs} results"}}
                result = out
            else:
                return {"jsonrpc": "2.0", "id": cid, "error": {"code": -32601, "message": "method not found"}}
        return {"jsonrpc": "2.0", "id": cid, "result": result}


class FlowServer:
    """Start with ``start()``; ``esplora_url`` and ``rpc_url`` point the real clients at it."""

    def __init__(self):
        self.state = ChainState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="flowserver", daemon=True)

    @property
    def esplora_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def etherscan_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/etherscan/v2/api"

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/rpc"

    def start(self) -> FlowServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fault(self, pattern: str, **kwargs) -> Fault:
        fault = Fault(pattern, **kwargs)
        with self.state.lock:
            self.state.faults.append(fault)
        return fault

    def requests_matching(self, pattern: str) -> list[str]:
        with self.state.lock:
            return [p for _, p in self.state.requests if re.search(pattern, p)]
