"""Source faults: typed retryable errors, counted and logged, and the good data of the same run kept."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError

from apps.flows import services, tasks
from apps.flows.clients import EsploraClient, MalformedResponse, SourceUnavailable
from apps.flows.models import AddressCursor, ExchangeWallet, FlowTx
from apps.markets.models import SourceStatus

from .scenarios import TIP, USERS, deposits

pytestmark = pytest.mark.django_db
T0 = 1_719_000_000 - 1_719_000_000 % 3600


@pytest.fixture
def kraken(flowserver, btc_wallets):
    address = btc_wallets["kraken"][1]
    history = deposits(address, 75, top_height=TIP - 10, t_top=T0, prefix="fault")
    flowserver.state.add(*history)
    flowserver.state.tip = TIP
    return ExchangeWallet.objects.get(address=address), history


def status() -> SourceStatus:
    return SourceStatus.objects.get(name=services.esplora_client().source)


def test_429_with_retry_after_is_a_retryable_error_carrying_it(kraken, flowserver):
    wallet, _ = kraken
    flowserver.fault(r"/address/", status=429, headers={"Retry-After": "7"}, body=b"Too Many Requests")
    with pytest.raises(SourceUnavailable) as caught:
        services.btc_address_sync(wallet_id=wallet.pk)
    assert caught.value.retry_after == 7.0 and caught.value.status == 429
    assert not FlowTx.objects.exists()
    assert status().errors == 1 and "rate limited" in status().last_error
    # Every worker now leaves the source alone for a while, and the poll fans out nothing.
    assert 0 < services.source_backing_off(source=services.esplora_client().source) <= 7
    assert tasks.btc_wallets_poll.run() == 0


def test_the_task_honours_retry_after_when_called_directly(kraken, flowserver):
    wallet, _ = kraken
    flowserver.fault(r"/address/", status=429, headers={"Retry-After": "3"})
    with pytest.raises(SourceUnavailable) as caught:
        tasks.btc_address_sync.run(wallet.pk)
    assert caught.value.retry_after == 3.0
    assert SourceUnavailable in tasks.btc_address_sync.autoretry_for
    assert OperationalError in tasks.btc_address_sync.autoretry_for  # a dropped database connection too
    assert tasks.btc_address_sync.retry_backoff and tasks.btc_address_sync.retry_jitter


def test_a_500_mid_walk_keeps_the_pages_before_it_and_the_next_run_finishes(kraken, flowserver):
    wallet, history = kraken
    flowserver.fault(r"/txs/chain/", status=500, body=b"Internal Server Error")
    with pytest.raises(SourceUnavailable) as caught:
        services.btc_address_sync(wallet_id=wallet.pk)
    assert caught.value.status == 500 and caught.value.retry_after is None
    assert FlowTx.objects.values("txid").distinct().count() == 25  # page 1 committed with its cursor
    assert AddressCursor.objects.get(wallet=wallet).walk_resume_txid == history[24]["txid"]
    result = services.btc_address_sync(wallet_id=wallet.pk)
    assert result.complete and result.txs_new == 50
    assert FlowTx.objects.values("txid").distinct().count() == 75
    assert status().errors == 1


def test_a_slow_response_times_out_as_retryable(kraken, flowserver, settings):
    wallet, _ = kraken
    settings.FLOWS_HTTP_TIMEOUT = 0.3
    flowserver.fault(r"/address/[^/]+$", delay=1.5)
    with pytest.raises(SourceUnavailable, match="timed out"):
        services.btc_address_sync(wallet_id=wallet.pk)
    result = services.btc_address_sync(wallet_id=wallet.pk)
    assert result.txs_new == 75


def test_a_malformed_page_is_counted_and_logged_and_the_good_pages_are_kept(kraken, flowserver, caplog):
    wallet, _ = kraken
    flowserver.fault(r"/txs/chain/", body=b'[{"txid": "7f', status=200)
    with caplog.at_level(logging.WARNING, logger="apps.flows"):
        result = services.btc_address_sync(wallet_id=wallet.pk)
    assert result.errors == 1 and not result.complete
    assert result.txs_new == 25
    assert any("malformed JSON" in r.getMessage() for r in caplog.records)
    assert status().errors == 1 and "malformed JSON" in status().last_error
    result = services.btc_address_sync(wallet_id=wallet.pk)
    assert result.complete and FlowTx.objects.values("txid").distinct().count() == 75


def test_a_malformed_transaction_is_skipped_and_counted_while_the_others_are_stored(flowserver, btc_wallets, caplog):
    address = btc_wallets["kraken"][2]
    good = deposits(address, 4, top_height=TIP - 10, t_top=T0, prefix="good")
    bad = deposits(address, 1, top_height=TIP - 20, t_top=T0 - 7200, prefix="bad")[0]
    bad["fee"] += 1  # inputs - outputs no longer equals the fee
    flowserver.state.add(*good, bad)
    flowserver.state.tip = TIP
    wallet = ExchangeWallet.objects.get(address=address)
    with caplog.at_level(logging.WARNING, logger="apps.flows"):
        result = services.btc_address_sync(wallet_id=wallet.pk)
    assert result.malformed == 1 and result.txs_new == 4 and result.complete
    assert not FlowTx.objects.filter(txid=bad["txid"]).exists()
    assert any(bad["txid"] in r.getMessage() and "fee" in r.getMessage() for r in caplog.records)
    assert status().rejected == 1


def test_client_errors_are_typed_with_context(flowserver):
    client = EsploraClient(flowserver.esplora_url, timeout=1)
    flowserver.fault(r"/blocks/tip/height", body=b"<html>maintenance</html>")
    with pytest.raises(MalformedResponse) as caught:
        client.tip_height()
    assert "127.0.0.1" in str(caught.value) and "tip height" in str(caught.value)
    flowserver.fault(r"/address/", status=503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    with pytest.raises(SourceUnavailable) as caught:
        client.address(USERS[0])
    assert caught.value.status == 503 and caught.value.retry_after == 0.0  # a date in the past: now
    assert client.tx_status("ab" * 32) is None  # 404: unknown to the server
