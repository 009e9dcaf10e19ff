"""The flows poll end to end: a Celery worker syncs the labelled wallets from the local Esplora server."""

from __future__ import annotations

import time

import pytest

from apps.flows.models import FlowBar, FlowTx

from .scenarios import TIP, basic_history

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
T0 = 1_719_000_000 - 1_719_000_000 % 3600


def test_the_poll_task_fans_out_through_a_worker_into_flow_bars(stack_factory, flowserver, btc_wallets):
    from apps.flows.tasks import btc_wallets_poll

    history = basic_history(btc_wallets, T0)
    flowserver.state.tip = TIP
    flowserver.state.add(*history.values())
    stack = stack_factory(extra_env={"ESPLORA_URL": flowserver.esplora_url, "FLOWS_ENABLED": "1"})
    btc_wallets_poll.delay()
    want = {tx["txid"] for tx in history.values()}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and set(FlowTx.objects.values_list("txid", flat=True)) != want:
        stack.check_alive()
        time.sleep(0.5)
    assert set(FlowTx.objects.values_list("txid", flat=True)) == want, stack.logs()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not FlowBar.objects.filter(exchange="all").exists():
        time.sleep(0.5)
    assert FlowBar.objects.filter(exchange="all", asset="BTC").exists()
    assert FlowBar.objects.exclude(exchange="all").values("exchange").distinct().count() >= 2
