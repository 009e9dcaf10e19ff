"""`make run`'s runner (supervisord.conf over the Procfile): one dead role is started again while the others keep
serving, and stopping the runner (Ctrl-C) leaves no process behind."""

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import psutil
import pytest
from celery import Celery

from tests.conftest import ROOT, free_port, redis_start, wait_for

pytestmark = pytest.mark.integration


def _web_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _role(runner: psutil.Process, program: str, role: str) -> psutil.Process | None:
    """The role's own process (not the shell or honcho above it, nor a pool process below it)."""
    for proc in runner.children(recursive=True):
        try:
            cmd = proc.cmdline()
            if len(cmd) > 2 and cmd[1].endswith("/" + program) and role in cmd \
                    and program not in " ".join(proc.parent().cmdline()[:2]):
                return proc
        except psutil.NoSuchProcess:
            continue
    return None


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _worker_pongs(control: Celery) -> bool:
    return bool(control.control.ping(timeout=0.5))


def test_a_killed_worker_comes_back_while_web_answers_and_ctrl_c_stops_every_child(tmp_path):
    redis_port, web_port = free_port(), free_port()
    redis = redis_start(redis_port, tmp_path)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {k: v for k, v in os.environ.items() if k not in ("SITE_URL", "MAKEFLAGS", "MAKELEVEL")}
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}", "REDIS_URL": redis_url, "DEBUG": "1",
            "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=300)
    log_path = tmp_path / "runner.log"
    url = f"http://127.0.0.1:{web_port}"
    control = Celery(broker=redis_url)
    with open(log_path, "ab") as log:  # append: supervisord reopens /dev/stdout for the children's output
        # `make serve` is `make run` after its setup steps; a session of its own, as a terminal's job is.
        proc = subprocess.Popen(["make", "--no-print-directory", "serve", f"PORT={web_port}"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    runner = psutil.Process(proc.pid)
    seen: set[psutil.Process] = set()
    logs = lambda: log_path.read_text(errors="replace")  # noqa: E731
    try:
        wait_for(lambda: _web_status(url) in (200, 503) and _worker_pongs(control), 90,
                 f"the runner never served\n{logs()[-4000:]}")
        worker, web = _role(runner, "celery", "worker"), _role(runner, "daphne", "pressureweb.asgi:application")
        assert worker and web and _role(runner, "celery", "beat"), logs()[-4000:]
        assert "spawned: 'web'" in logs() and "spawned: 'redis'" not in logs()  # REDIS_URL is set
        assert web.environ()["SITE_URL"] == url  # email links point at this server
        seen.update(runner.children(recursive=True))

        worker.kill()
        worker.wait(10)
        answers = []

        def back() -> bool:
            answers.append(_web_status(url))
            new = _role(runner, "celery", "worker")
            if new is None or new.pid == worker.pid:
                return False
            seen.update(runner.children(recursive=True))
            return _worker_pongs(control)

        wait_for(back, 90, f"the worker did not come back\n{logs()[-4000:]}")
        assert all(status in (200, 503) for status in answers), answers
        assert web.is_running() and _role(runner, "daphne", "pressureweb.asgi:application") == web
        assert "exited: worker" in logs() and "exited: web" not in logs()

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: to every process of the terminal's job
        proc.wait(60)
        left = [p for p in seen if _alive(p)]
        assert left == [], (left, logs()[-4000:])
        assert "stopped: web" in logs() and _web_status(url) is None
    finally:
        if proc.poll() is None:  # the test failed before stopping it
            seen.update(runner.children(recursive=True))
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(60)
        for p in seen:
            if _alive(p):
                p.kill()
        control.close()
        redis.kill()
        redis.wait(10)
