"""`make run` prints no traceback on a normal start, and the web process writes no line per request or per
socket unless ACCESS_LOG=1 (the Procfile's web command, run as `make run` runs it: through honcho)."""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import BIN, ROOT, database_url, free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_wallet_labels_import_before_redis_is_up_prints_no_traceback():
    """`make run` imports the labels before the process runner starts Redis."""
    port = free_port()  # nothing listens here: the embedded Redis of a `make run` that has not started it yet
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(DATABASE_URL=database_url(), EMBEDDED_REDIS_PORT=str(port), DEBUG="1")
    out = subprocess.run([sys.executable, "manage.py", "import_wallet_labels"], cwd=ROOT, env=env, timeout=300,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr and "Error 111" not in out.stderr, out.stderr
    assert "created 935" in out.stdout
    with pytest.raises(OSError):  # the Redis it ran meanwhile is gone again
        __import__("socket").create_connection(("127.0.0.1", port), timeout=0.5)


def _web_lines(*, access_log: bool, requests: int) -> list[str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(), "WEB_PORT": str(port), "DEBUG": "1",
           "PYTHONUNBUFFERED": "1", "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("ACCESS_LOG", None)
    if access_log:
        env["ACCESS_LOG"] = "1"
    proc = subprocess.Popen([str(BIN / "honcho"), "start", "web"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except urllib.error.HTTPError:  # 503 without a worker's heartbeat: it answers all the same
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("the web process did not answer") from None
                time.sleep(0.3)
        for _ in range(requests):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/episodes/", timeout=10).read()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    return output.splitlines()


def test_the_web_process_logs_no_requests_unless_asked():
    quiet = _web_lines(access_log=False, requests=20)
    assert not [line for line in quiet if '"GET ' in line], quiet
    assert not [line for line in quiet if "Traceback" in line], quiet
    assert len(quiet) < 15, quiet  # start and stop lines only, whatever the traffic
    loud = _web_lines(access_log=True, requests=20)
    assert len([line for line in loud if '"GET /episodes/' in line]) == 20, loud
