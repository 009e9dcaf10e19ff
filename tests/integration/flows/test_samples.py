"""manage.py load_flow_samples: the shipped real blocks through the real parsers and accounting, and the flows
page's RECORDED SAMPLE notice and empty states."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from apps.flows.models import FlowBar, FlowSample, FlowTx
from tests.conftest import SHARED_DATA

BLOCKS = SHARED_DATA / "onchain-blocks"
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
# Binance 14/15/16, the hot wallets SOURCE.txt names.
BINANCE_HOT = {"0x28c6c06298d514db089934071355e5743bf21d60", "0x21a31ee1afc51d94c2efccaa2092ad1028285549",
               "0xdfd5293d8e347dfe59e90efd55b2956a1343963d"}
COINBASE_HOT = "0xa9d1e08c7793af67e9d92fe308d5697fb81d3e43"


def _token_transfers() -> list[dict]:
    """ethereum-etl's own decoding of the Transfer events (a file the loader does not read)."""
    with (BLOCKS / "eth-17173049-17173050-token_transfers.jsonl").open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _load() -> str:
    out = []
    call_command("load_flow_samples", stdout=_Sink(out))
    return "".join(out)


class _Sink:
    def __init__(self, out: list):
        self.out = out

    def write(self, text: str) -> None:
        self.out.append(text)

    def flush(self) -> None:
        pass


def _snapshot() -> tuple:
    return (
        sorted(FlowTx.objects.values_list("chain", "txid", "exchange", "counterparty", "inflow", "outflow",
                                          "internal", "fee", "confirmed", "updated_at")),
        sorted(FlowBar.objects.values_list("asset", "exchange", "bucket_start", "inflow", "outflow", "netflow_z",
                                           "updated_at")),
        sorted(FlowSample.objects.values_list("key", "assets", "flow_rows", "updated_at")),
    )


@pytest.mark.django_db
def test_the_command_needs_the_wallet_labels():
    with pytest.raises(CommandError, match="import_wallet_labels"):
        call_command("load_flow_samples")


@pytest.mark.django_db
def test_the_recorded_blocks_give_the_flows_their_source_describes(labels):
    report = _load()
    assert "eth-17173049-17173050: 348 transactions" in report  # 50 USDT/USDC transfers + 298 transactions
    assert "btc-702861: 2,500 transactions" in report

    eth = FlowSample.objects.get(key="eth-17173049-17173050")
    assert (eth.chain, eth.first_height, eth.last_height) == ("eth", 17173049, 17173050)
    assert (eth.start, eth.end) == (datetime(2023, 5, 2, 12, 19, 59, tzinfo=UTC),
                                    datetime(2023, 5, 2, 12, 20, 11, tzinfo=UTC))
    assert not eth.inflows_only and eth.flow_rows == FlowTx.objects.filter(chain="eth").count()
    btc = FlowSample.objects.get(key="btc-702861")
    assert (btc.first_height, btc.start, btc.transactions, btc.inflows_only) == (
        702861, datetime(2021, 9, 30, 11, 50, 41, tzinfo=UTC), 2500, True)

    # ~9.0k USDT out of Binance's hot wallets and ~4.8k USDT into Coinbase's, per ethereum-etl's decoding.
    transfers = [t for t in _token_transfers() if t["token_address"] == USDT]
    out_of_binance = [t for t in transfers if t["from_address"] in BINANCE_HOT]
    into_coinbase = [t for t in transfers if t["to_address"] == COINBASE_HOT]
    assert len(out_of_binance) == 3 and len(into_coinbase) == 3
    rows = {r.txid: r for r in FlowTx.objects.filter(chain="eth", asset="USDT")}
    binance_out = sum(int(rows[f"{t['transaction_hash']}:{t['log_index']}"].outflow) for t in out_of_binance)
    assert all(rows[f"{t['transaction_hash']}:{t['log_index']}"].exchange == "binance" for t in out_of_binance)
    assert binance_out == sum(t["value"] for t in out_of_binance)
    assert round(binance_out / 1e9, 1) == 9.0  # thousands of USDT (6 decimals)
    coinbase_in = sum(int(r.inflow) for r in rows.values() if r.exchange == "coinbase")
    assert coinbase_in == sum(t["value"] for t in into_coinbase)
    assert round(coinbase_in / 1e9, 1) == 4.8

    # The raw block has no spent outputs: inflows only, at the block's height and time.
    btc_rows = list(FlowTx.objects.filter(chain="btc"))
    assert btc_rows and all(int(r.outflow) == 0 and int(r.inflow) > 0 for r in btc_rows)
    assert {(r.block_height, r.block_time, r.confirmed) for r in btc_rows} == {(702861, btc.start, True)}
    assert {r.txid[:8] for r in btc_rows} == {"9c013a9a", "99ec5417", "e7390df0"}  # three deposits to OKX
    assert sum(int(r.inflow) for r in btc_rows) == 1_870_199

    bars = FlowBar.objects.filter(exchange="all")
    assert {(b.asset, b.bucket_start) for b in bars} >= {
        ("BTC", datetime(2021, 9, 30, 11, tzinfo=UTC)), ("USDT", datetime(2023, 5, 2, 12, tzinfo=UTC))}
    usdt = bars.get(asset="USDT")
    assert int(usdt.inflow) == coinbase_in + 3_506_369_600  # and FixedFloat's deposit


@pytest.mark.django_db
def test_loading_again_changes_nothing(labels):
    _load()
    before = _snapshot()
    report = _load()
    assert _snapshot() == before
    assert report.count("nothing changed") == 2


@pytest.mark.django_db
def test_the_page_shows_the_sample_labelled_when_polling_is_off(client, labels, settings):
    settings.FLOWS_ENABLED = False
    _load()
    html = client.get(reverse("flows:page")).content.decode()
    assert 'id="recorded-sample"' in html and "RECORDED SAMPLE" in html
    assert "2023-05-02 12:19:59\u201312:20:11 UTC, 2 Ethereum blocks (USDT, ETH)" in html
    assert "2021-09-30 11:50:41 UTC, Bitcoin block 702861 (BTC) (inflows only)" in html
    # Opened without a range, the page shows the hour of the BTC sample, not an empty week.
    assert "The BTC flows in this range are this recorded sample" in html
    assert 'id="empty-state"' not in html
    assert re.search(r'data-field="inflow">0\.0187 BTC', html)
    html = client.get(reverse("flows:page"), {"asset": "USDT"}).content.decode()
    assert "The USDT flows in this range are this recorded sample" in html
    assert re.search(r'data-field="inflow">8,306\.0922 USDT', html)


@pytest.mark.django_db
def test_the_empty_state_names_the_setting_when_polling_is_off(client, labels, settings):
    settings.FLOWS_ENABLED = False
    _load()
    html = client.get(reverse("flows:page"), {"asset": "BTC", "range": "7d"}).content.decode()
    assert 'id="empty-state"' in html and 'id="flows-off"' in html
    assert "Set <code>FLOWS_ENABLED=1</code>" in html
    assert "wait for the next poll" not in html
    assert "The BTC flows in this range are this recorded sample" not in html
    assert 'href="?asset=BTC&range=custom&start=2021-09-30T11:00:00+00:00&end=2021-09-30T12:00:00+00:00"' in html
    settings.ETH_RPC_URL = ""
    html = client.get(reverse("flows:page"), {"asset": "USDC", "range": "7d"}).content.decode()
    assert re.search(r"Set <code>FLOWS_ENABLED=1</code> and an Ethereum JSON-RPC node in\s+<code>ETH_RPC_URL</code> "
                     r"\(unset now\)", html)


@pytest.mark.django_db
def test_with_polling_on_the_page_waits_for_the_poll(client, labels, settings):
    settings.FLOWS_ENABLED = True
    _load()
    html = client.get(reverse("flows:page")).content.decode()
    assert 'id="empty-state"' in html and 'id="flows-off"' not in html
    assert "wait for the next poll" in html
    assert "RECORDED SAMPLE" in html  # still named, one click away
