"""A local stand-in for data.binance.vision on 127.0.0.1, serving archives built in the test from real data.

Archives are zips of real files from ../shared/data (read in place, packed into the tmp dir, never
copied into the project), each with its ``.CHECKSUM`` beside it, at data.binance.vision's paths.
Faults are scripted per path: an answer given once (e.g. 429 with Retry-After), a body cut short
once, a wrong checksum. Range requests are answered with 206 like the real host (S3 + CloudFront).
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def zipped(name: str, body: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, body)
    return buffer.getvalue()


class VisionServer:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.once: dict[str, tuple[int, dict[str, str]]] = {}  # path -> (status, headers), answered once
        self.cut_once: set[str] = set()  # paths whose next body stops half-way
        self.log: list[tuple[str, float, str, int]] = []  # (path, time, Range header, body bytes sent)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server._answer(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> VisionServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def add(self, path: str, body: bytes, *, checksum: str | None = None) -> None:
        """An archive at `path` (e.g. data/spot/monthly/...zip) and its CHECKSUM (the right one unless given)."""
        name = path.rsplit("/", 1)[1]
        self.files[path] = body
        digest = checksum or hashlib.sha256(body).hexdigest()
        self.files[path + ".CHECKSUM"] = f"{digest}  {name}\n".encode()

    def gets(self, path: str) -> list[tuple[str, float, str, int]]:
        return [entry for entry in self.log if entry[0] == path]

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.lstrip("/")
        wanted = handler.headers.get("Range", "")
        with self._lock:
            once = self.once.pop(path, None)
            cut = path in self.cut_once
            self.cut_once.discard(path)
        if once is not None:
            self._send(handler, once[0], b"", once[1], path, wanted)
            return
        body = self.files.get(path)
        if body is None:
            self._send(handler, 404, b"<Error><Code>NoSuchKey</Code></Error>", {}, path, wanted)
            return
        status, headers = 200, {}
        if wanted.startswith("bytes=") and wanted.endswith("-"):
            offset = int(wanted[6:-1])
            if offset >= len(body):
                self._send(handler, 416, b"", {"Content-Range": f"bytes */{len(body)}"}, path, wanted)
                return
            status, headers = 206, {"Content-Range": f"bytes {offset}-{len(body) - 1}/{len(body)}"}
            body = body[offset:]
        self._send(handler, status, body, headers, path, wanted, cut=cut)

    def _send(self, handler, status: int, body: bytes, headers: dict[str, str], path: str, wanted: str, *,
              cut: bool = False) -> None:
        sent = body[: len(body) // 2] if cut else body
        with self._lock:
            self.log.append((path, time.monotonic(), wanted, len(sent)))
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(sent)
        handler.wfile.flush()
        if cut:
            handler.close_connection = True
