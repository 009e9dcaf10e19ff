"""The sockets' edges under the real Daphne: unknown paths, foreign origins and bad client frames.

Daphne only lets an application close with 1000 or 3000-4999; anything else (1003, 1009) becomes a 1011 and a logged
traceback per frame. So each refusal is checked on the wire and in Daphne's log.
"""

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from apps.live.consumers import CLOSE_TOO_BIG, CLOSE_UNSUPPORTED_DATA, MAX_CLIENT_FRAME

pytestmark = pytest.mark.integration


def _handshake_status(url: str, origin: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        connect(url, origin=origin, open_timeout=10)
    return refused.value.response.status_code


def _close_code_after(ws, frame: str | bytes) -> int:
    assert '"hello"' in ws.recv(timeout=10)
    ws.send(frame)
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    return closed.value.rcvd.code


def test_unknown_paths_foreign_origins_and_bad_frames_are_refused_without_a_traceback(stack_factory):
    stack = stack_factory(workers=0)
    ws_url = stack.url.replace("http://", "ws://")
    origin = stack.url
    log_file = stack.tmp / "web.log"
    start_offset = log_file.stat().st_size  # past the readiness probe's 503 (no worker here)

    for path in ("/ws/nope/", "/ws/instruments/abc/", "/favicon.ico", "/ws/overview"):
        assert _handshake_status(ws_url + path, origin) == 403, path
    assert _handshake_status(ws_url + "/ws/overview/", "https://evil.example") == 403
    assert _handshake_status(ws_url + "/ws/notifications/", origin) == 403  # anonymous

    with connect(ws_url + "/ws/overview/", origin=origin, open_timeout=10) as ws:
        assert _close_code_after(ws, "x" * (MAX_CLIENT_FRAME + 1)) == CLOSE_TOO_BIG == 4009
    with connect(ws_url + "/ws/overview/", origin=origin, open_timeout=10) as ws:
        assert _close_code_after(ws, b"\x00\x01") == CLOSE_UNSUPPORTED_DATA == 4003
    with connect(ws_url + "/ws/flows/", origin=origin, open_timeout=10) as ws:
        assert _close_code_after(ws, "hi") == CLOSE_UNSUPPORTED_DATA

    # A well-behaved socket on the same process still works after all that.
    with connect(ws_url + "/ws/overview/", origin=origin, open_timeout=10) as ws:
        assert '"hello"' in ws.recv(timeout=10)
        ws.send('{"type":"ping"}')
        assert ws.recv(timeout=10) == '{"type": "pong"}'

    stack.check_alive()
    log = log_file.read_bytes()[start_offset:].decode(errors="replace")
    assert "WSREJECT /ws/nope/" in log  # the log is the right one, and complete
    assert "Traceback" not in log and " ERROR " not in log, log
