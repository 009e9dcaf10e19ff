"""Writes of exchange flows, one module per capability:

- :mod:`.labels`: importing exchange wallet labels;
- :mod:`.btc`: walking Bitcoin address histories, settling pending transactions, reserves;
- :mod:`.eth`: ERC-20 Transfer logs with reorg handling, native ETH from Etherscan;
- :mod:`.bars`: hourly bars, netflow z-scores, the live push;
- :mod:`.store`: the FlowTx upsert every sync ends in, and the page-cache version;
- :mod:`.sources`: clients, status counters and the cross-worker back-off.

Every step is idempotent: a transaction is stored as one FlowTx row per (exchange, counterparty)
keyed by (chain, txid, exchange, counterparty), rows are only written when their values change, and
cursors advance in the same database transaction as the rows they cover. So a worker killed mid-run,
or the same page fetched twice, leaves the same rows behind.

The names below are the package's interface (tasks, commands, admin, consumers and tests use them).
"""

from apps.flows.services.bars import (
    FLOWS_GROUP,
    flow_bars_refresh,
    flow_bars_refresh_hours,
    flow_bars_refresh_recent,
    flows_publish,
)
from apps.flows.services.btc import AddressSyncResult, btc_address_sync, btc_pending_recheck, btc_reserves_snapshot
from apps.flows.services.eth import EthSyncResult, eth_native_sync, eth_transfers_sync
from apps.flows.services.labels import DEFAULT_LABEL_FILES, LabelImportResult, wallet_labels_import
from apps.flows.services.sources import (
    esplora_client,
    eth_rpc_client,
    etherscan_client,
    source_backing_off,
    source_backoff_set,
)
from apps.flows.services.store import StoreResult, flow_rows_store, flows_changed, flows_version_bump

__all__ = [
    "DEFAULT_LABEL_FILES",
    "FLOWS_GROUP",
    "AddressSyncResult",
    "EthSyncResult",
    "LabelImportResult",
    "StoreResult",
    "btc_address_sync",
    "btc_pending_recheck",
    "btc_reserves_snapshot",
    "esplora_client",
    "eth_native_sync",
    "eth_rpc_client",
    "eth_transfers_sync",
    "etherscan_client",
    "flow_bars_refresh",
    "flow_bars_refresh_hours",
    "flow_bars_refresh_recent",
    "flow_rows_store",
    "flows_changed",
    "flows_publish",
    "flows_version_bump",
    "source_backing_off",
    "source_backoff_set",
    "wallet_labels_import",
]
