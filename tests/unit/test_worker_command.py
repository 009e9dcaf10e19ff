"""The Celery worker as the Procfile runs it."""

from celery.bin.base import CLIContext
from celery.bin.worker import worker

from pressureweb.celery import app
from tests.conftest import procfile_command


def test_the_procfile_worker_sends_no_heartbeat_gossip_or_mingle():
    """Celery's worker heartbeat publishes from the consumer's event loop and, while the broker is down, retries
    forever with a blocking sleep: the worker stopped noticing a Redis restart (tests/integration/test_faults.py).
    Gossip and mingle ride on the same events, and nothing here reads them."""
    args = procfile_command("worker")
    obj = CLIContext(app=app, no_color=True, workdir=None)
    params = worker.make_context("worker", args[args.index("worker") + 1:], obj=obj).params
    assert params["without_heartbeat"] and params["without_gossip"] and params["without_mingle"]
