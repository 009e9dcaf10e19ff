"""The embedded Redis starter refuses a port that is already in use instead of silently sharing it."""

import os
import socket
import subprocess
import sys

import psutil
import pytest
import redis

from pressureweb import embedded_redis
from tests.conftest import ROOT, free_port


@pytest.fixture
def port(monkeypatch, tmp_path):
    port = free_port()
    monkeypatch.setattr(embedded_redis, "PORT", port)
    monkeypatch.setattr(embedded_redis, "DATA_DIR", tmp_path)
    return port


@pytest.fixture
def someone_listening(port):
    """Any program on the port (not even Redis)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield port


def _redis_servers() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if "redis-server" in p.name()}


def _main(port: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "EMBEDDED_REDIS_PORT": str(port), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pressureweb.embedded_redis"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_start_serves_a_free_port_and_refuses_it_once_taken(port):
    proc = embedded_redis.start()
    try:
        assert redis.Redis(port=port).ping()
        before = _redis_servers()
        # The old starter returned None here and let the caller share whatever answered.
        with pytest.raises(embedded_redis.PortTaken, match=f"127.0.0.1:{port} is already in use"):
            embedded_redis.start()
        assert _redis_servers() == before  # nothing was spawned
        result = _main(port)
        assert result.returncode == 1 and result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert f"127.0.0.1:{port} is already in use" in line
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_port_held_by_any_program_is_refused_in_one_line(someone_listening):
    port = someone_listening
    with pytest.raises(embedded_redis.PortTaken) as refused:
        embedded_redis.start()
    assert "EMBEDDED_REDIS_PORT" in str(refused.value) and "\n" not in str(refused.value)
    result = _main(port)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [str(refused.value)]
