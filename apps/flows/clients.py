"""HTTP clients for the on-chain sources: Esplora (Bitcoin), Ethereum JSON-RPC and Etherscan.

They fetch and check the envelope, nothing more: transactions and logs are parsed by
apps.flows.esplora / apps.flows.erc20. Every failure is typed so callers can tell what to do:

- :class:`SourceUnavailable`: worth retrying later (HTTP 429, 5xx, timeouts, refused connections).
  ``retry_after`` carries the server's Retry-After in seconds when it sent one.
- :class:`MalformedResponse`: the body is not the JSON (or text) the endpoint promises; retrying
  the same request at once rarely helps, so it is counted and the run moves on.
- :class:`SourceRejected`: any other 4xx (e.g. an address the server refuses); not retryable.
- :class:`RpcError`: a JSON-RPC error object (``code``, ``message``).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import orjson
import requests

from pressureweb.lib.http import retry_after_s

logger = logging.getLogger(__name__)

USER_AGENT = "PressureWeb/0.1 (exchange flows)"
DEFAULT_TIMEOUT = 20.0
CHAIN_PAGE_SIZE = 25  # confirmed transactions per page of /address/:a/txs[/chain/:last]
_SNIPPET = 200


class SourceError(Exception):
    """A request to an on-chain source failed; ``source``, ``url`` and ``status`` say where."""

    def __init__(self, message: str, *, source: str, url: str = "", status: int | None = None):
        super().__init__(message)
        self.source = source
        self.url = url
        self.status = status

    def __str__(self) -> str:
        where = f" ({self.url}" + (f", HTTP {self.status})" if self.status else ")") if self.url else ""
        return f"{self.source}: {self.args[0]}{where}"


class SourceUnavailable(SourceError):
    """Temporary: retry later, no sooner than ``retry_after`` seconds when that is set."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class MalformedResponse(SourceError):
    """The body does not have the promised shape; ``snippet`` is its beginning, for the log."""

    def __init__(self, message: str, *, snippet: str = "", **kwargs):
        super().__init__(message, **kwargs)
        self.snippet = snippet


class SourceRejected(SourceError):
    """A 4xx other than 429: the request itself is wrong for this server."""


class RpcError(SourceError):
    """A JSON-RPC error object."""

    def __init__(self, message: str, *, code: int | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.code = code


def _snippet(content: bytes) -> str:
    return content[:_SNIPPET].decode("utf-8", errors="replace")


class _HttpSource:
    """One base URL, one pooled session, typed errors."""

    kind = "http"

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        self.host = urlsplit(self.base_url).netloc or self.base_url
        self.source = f"{self.kind}:{self.host}"

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, method: str, url: str, **kwargs) -> requests.Response:
        try:
            resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            logger.warning("%s: %s %s timed out after %s s", self.source, method, url, self.timeout)
            raise SourceUnavailable(f"timed out after {self.timeout} s", source=self.source, url=url) from exc
        except requests.RequestException as exc:
            logger.warning("%s: %s %s failed: %s", self.source, method, url, exc)
            raise SourceUnavailable(f"request failed: {exc}", source=self.source, url=url) from exc
        status = resp.status_code
        if status == 429 or status >= 500:
            wait = retry_after_s(resp.headers.get("Retry-After"))
            logger.warning("%s: %s %s -> HTTP %s (retry after %s s): %s", self.source, method, url, status, wait,
                           _snippet(resp.content))
            what = "rate limited" if status == 429 else "server error"
            raise SourceUnavailable(what, retry_after=wait, source=self.source, url=url, status=status)
        return resp

    def _check_4xx(self, resp: requests.Response, url: str) -> None:
        if 400 <= resp.status_code < 500:
            logger.warning("%s: %s -> HTTP %s: %s", self.source, url, resp.status_code, _snippet(resp.content))
            raise SourceRejected(_snippet(resp.content) or "client error", source=self.source, url=url,
                                 status=resp.status_code)

    def _json(self, resp: requests.Response, url: str):
        try:
            return orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:
            snippet = _snippet(resp.content)
            logger.warning("%s: %s returned malformed JSON (%s): %r", self.source, url, exc, snippet)
            raise MalformedResponse(f"malformed JSON: {exc}", snippet=snippet, source=self.source, url=url,
                                    status=resp.status_code) from None

    def _malformed(self, message: str, url: str, body: object) -> MalformedResponse:
        snippet = repr(body)[:_SNIPPET]
        logger.warning("%s: %s: %s: %s", self.source, url, message, snippet)
        return MalformedResponse(message, snippet=snippet, source=self.source, url=url)


# --- Esplora ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddressInfo:
    address: str
    chain_tx_count: int
    mempool_tx_count: int
    balance: int  # confirmed: chain_stats.funded_txo_sum - chain_stats.spent_txo_sum, satoshis


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class EsploraClient(_HttpSource):
    """Esplora REST (mempool.space, blockstream.info, a self-hosted electrs): ``base_url`` ends in /api."""

    kind = "esplora"

    def _get(self, path: str) -> requests.Response:
        url = self.base_url + path
        resp = self._send("GET", url)
        self._check_4xx(resp, url)
        return resp

    def tip_height(self) -> int:
        url = self.base_url + "/blocks/tip/height"
        text = self._get("/blocks/tip/height").text.strip()
        if not text.isdigit():
            raise self._malformed("tip height is not a number", url, text)
        return int(text)

    def address(self, address: str) -> AddressInfo:
        path = f"/address/{quote(address, safe='')}"
        body = self._json(self._get(path), self.base_url + path)
        chain = body.get("chain_stats") if isinstance(body, dict) else None
        mempool = body.get("mempool_stats") if isinstance(body, dict) else None
        if not isinstance(chain, dict) or not isinstance(mempool, dict):
            raise self._malformed("address without chain_stats/mempool_stats", self.base_url + path, body)
        funded, spent = _count(chain.get("funded_txo_sum")), _count(chain.get("spent_txo_sum"))
        txs, pending = _count(chain.get("tx_count")), _count(mempool.get("tx_count"))
        if funded is None or spent is None or txs is None or pending is None or spent > funded:
            raise self._malformed("address stats are not consistent non-negative integers", self.base_url + path,
                                  body)
        return AddressInfo(address, txs, pending, funded - spent)

    def address_txs(self, address: str, *, after_txid: str | None = None) -> list:
        """Newest first. Without ``after_txid``: mempool txs then the newest 25 confirmed; with it: the
        25 confirmed txs after that one. Items are returned as decoded JSON, unparsed."""
        path = f"/address/{quote(address, safe='')}/txs"
        if after_txid:
            path += f"/chain/{quote(after_txid, safe='')}"
        body = self._json(self._get(path), self.base_url + path)
        if not isinstance(body, list):
            raise self._malformed("transaction list is not a list", self.base_url + path, body)
        return body

    def tx_status(self, txid: str) -> dict | None:
        """``{"confirmed": bool, "block_height": ..., "block_time": ...}``, or None when the server does not
        know the transaction (dropped from the mempool or replaced)."""
        path = f"/tx/{quote(txid, safe='')}/status"
        url = self.base_url + path
        resp = self._send("GET", url)
        if resp.status_code == 404:
            return None
        self._check_4xx(resp, url)
        body = self._json(resp, url)
        if not isinstance(body, dict) or not isinstance(body.get("confirmed"), bool):
            raise self._malformed("tx status without a boolean confirmed", url, body)
        return body


# --- Ethereum JSON-RPC ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockHeader:
    height: int
    hash: str
    timestamp: int


_TOO_MANY = ("more than", "too many", "limit exceeded", "range is too large", "block range", "response size")
_TRANSIENT_RPC = {-32603, -32000, -32002}


def _hex_int(value: object) -> int | None:
    if isinstance(value, str) and value.startswith("0x") and 2 < len(value) <= 66:
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


def _topic(address: str) -> str:
    return "0x" + "0" * 24 + address.lower()[2:]


class EthRpcClient(_HttpSource):
    """Ethereum JSON-RPC over HTTP (any node or provider URL)."""

    kind = "eth-rpc"

    def __init__(self, url: str, **kwargs):
        super().__init__(url, **kwargs)
        self.url = url
        self._ids = itertools.count(1)

    def _post(self, payload) -> object:
        resp = self._send("POST", self.url, data=orjson.dumps(payload), headers={"Content-Type": "application/json"})
        self._check_4xx(resp, self.url)
        return self._json(resp, self.url)

    def _result(self, reply: object, method: str):
        if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
            raise self._malformed(f"{method}: reply is not a JSON-RPC response", self.url, reply)
        error = reply.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = str(error.get("message") if isinstance(error, dict) else error)
            logger.warning("%s: %s -> JSON-RPC error %s: %s", self.source, method, code, message)
            if code in _TRANSIENT_RPC and not any(s in message.lower() for s in _TOO_MANY):
                raise SourceUnavailable(f"{method}: {message}", source=self.source, url=self.url)
            raise RpcError(f"{method}: {message}", code=code, source=self.source, url=self.url)
        return reply["result"]

    def call(self, method: str, params: Sequence = ()) -> object:
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        return self._result(self._post(payload), method)

    def batch(self, calls: Sequence[tuple[str, Sequence]]) -> list:
        """Several calls in one request (JSON-RPC batch); results in the order of ``calls``."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)} for i, (m, p) in zip(ids, calls,
                                                                                                   strict=True)]
        reply = self._post(payload)
        if not isinstance(reply, list):
            # A provider without batch support answers with one error object.
            return [self._result(reply, calls[0][0])] if len(calls) == 1 else self._unbatched(calls, reply)
        by_id = {r.get("id"): r for r in reply if isinstance(r, dict)}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise self._malformed(f"batch reply lacks ids {missing[:5]}", self.url, reply)
        return [self._result(by_id[i], m) for i, (m, _) in zip(ids, calls, strict=True)]

    def _unbatched(self, calls, reply) -> list:
        logger.info("%s: batch refused (%r); falling back to single calls", self.source, repr(reply)[:120])
        return [self.call(m, p) for m, p in calls]

    def block_number(self) -> int:
        value = self.call("eth_blockNumber")
        height = _hex_int(value)
        if height is None:
            raise self._malformed("eth_blockNumber is not a hex quantity", self.url, value)
        return height

    def blocks(self, heights: Iterable[int], *, batch_size: int = 50) -> dict[int, BlockHeader]:
        """Hash and timestamp of each block (eth_getBlockByNumber without transactions)."""
        wanted = sorted(set(heights))
        out: dict[int, BlockHeader] = {}
        for i in range(0, len(wanted), batch_size):
            chunk = wanted[i:i + batch_size]
            results = self.batch([("eth_getBlockByNumber", (hex(h), False)) for h in chunk])
            for h, block in zip(chunk, results, strict=True):
                if block is None:
                    # Not there (yet) on this node: the caller treats the chain as moved.
                    raise SourceUnavailable(f"block {h} not found", source=self.source, url=self.url)
                number = _hex_int(block.get("number")) if isinstance(block, dict) else None
                stamp = _hex_int(block.get("timestamp")) if isinstance(block, dict) else None
                digest = block.get("hash") if isinstance(block, dict) else None
                if number != h or stamp is None or not isinstance(digest, str) or len(digest) != 66:
                    raise self._malformed(f"block {h} lacks number/hash/timestamp", self.url, block)
                out[h] = BlockHeader(h, digest.lower(), stamp)
        return out

    def get_logs(self, *, from_block: int, to_block: int, addresses: Sequence[str], topics: Sequence) -> list:
        flt = {"fromBlock": hex(from_block), "toBlock": hex(to_block), "address": list(addresses),
               "topics": list(topics)}
        logs = self.call("eth_getLogs", [flt])
        if not isinstance(logs, list):
            raise self._malformed("eth_getLogs result is not a list", self.url, logs)
        return logs

    def transfer_logs(self, *, from_block: int, to_block: int, tokens: Sequence[str], wallets: Sequence[str],
                      topic0: str, chunk_blocks: int = 2000, wallets_per_query: int = 500) -> list:
        """Transfer logs of ``tokens`` from or to any of ``wallets`` in [from_block, to_block].

        Two filters per chunk (wallet as topics[1], then as topics[2]), the wallets split into groups
        the provider accepts, block ranges in chunks; a chunk the provider finds too big is halved.
        Logs matching both filters (wallet to wallet) are returned once.
        """
        seen: dict[tuple[str, str], dict] = {}
        groups = [[_topic(w) for w in wallets[i:i + wallets_per_query]]
                  for i in range(0, len(wallets), wallets_per_query)]
        start = from_block
        while start <= to_block:
            end = min(to_block, start + chunk_blocks - 1)
            for group in groups:
                for topics in ([topic0, group], [topic0, None, group]):
                    for log in self._logs_split(start, end, tokens, topics):
                        key = (str(log.get("transactionHash")), str(log.get("logIndex"))) \
                            if isinstance(log, dict) else (repr(log), "")
                        seen[key] = log
            start = end + 1
        return list(seen.values())

    def _logs_split(self, start: int, end: int, tokens, topics) -> list:
        try:
            return self.get_logs(from_block=start, to_block=end, addresses=tokens, topics=topics)
        except RpcError as exc:
            if start == end or not any(s in str(exc.args[0]).lower() for s in _TOO_MANY):
                raise
            mid = (start + end) // 2
            logger.info("%s: eth_getLogs %s-%s too large, splitting", self.source, start, end)
            return self._logs_split(start, mid, tokens, topics) + self._logs_split(mid + 1, end, tokens, topics)


# --- Etherscan ---------------------------------------------------------------------------------------


class EtherscanClient(_HttpSource):
    """Etherscan's account API (v2, chainid 1): native ETH transfers of an address, which logs cannot show.

    Used only when ETHERSCAN_API_KEY is set. Etherscan answers HTTP 200 with ``status`` "0" for both
    "no transactions" and errors; rate limiting ("Max rate limit reached") becomes SourceUnavailable.
    """

    kind = "etherscan"

    def __init__(self, api_key: str, base_url: str = "https://api.etherscan.io/v2/api", *, chain_id: int = 1,
                 **kwargs):
        super().__init__(base_url, **kwargs)
        self.api_key = api_key
        self.chain_id = chain_id

    def account_txlist(self, address: str, *, start_block: int = 0, end_block: int = 99_999_999, page: int = 1,
                       offset: int = 1000) -> list[dict]:
        """Normal transactions of ``address``, oldest first (``sort=asc``)."""
        params = {"chainid": self.chain_id, "module": "account", "action": "txlist", "address": address,
                  "startblock": start_block, "endblock": end_block, "page": page, "offset": offset, "sort": "asc",
                  "apikey": self.api_key}
        url = self.base_url
        resp = self._send("GET", url, params=params)
        self._check_4xx(resp, url)
        body = self._json(resp, url)
        if not isinstance(body, dict) or "result" not in body:
            raise self._malformed("reply without result", url, body)
        result = body["result"]
        if body.get("status") == "1" and isinstance(result, list):
            return result
        message = f"{body.get('message', '')} {result if isinstance(result, str) else ''}".strip()
        if "no transactions found" in message.lower():
            return []
        if "rate limit" in message.lower():
            raise SourceUnavailable(message, retry_after=1.0, source=self.source, url=url)
        raise RpcError(message or "status 0", source=self.source, url=url)
