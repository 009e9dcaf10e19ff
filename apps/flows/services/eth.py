"""Ethereum flows: USDT/USDC Transfer logs of labelled wallets with reorg handling, and native ETH
transfers from Etherscan when a key is set."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction

from apps.flows import selectors
from apps.flows.clients import BlockHeader, EtherscanClient, EthRpcClient, SourceError, SourceUnavailable
from apps.flows.erc20 import TRANSFER_TOPIC, USDC, USDT, parse_transfer_log
from apps.flows.esplora import MalformedTx, Tx
from apps.flows.models import AddressCursor, BlockHash, Chain, ChainCursor, ExchangeWallet, FlowTx
from apps.flows.reorg import DeepReorg, find_fork_point
from apps.flows.services.bars import flow_bars_refresh_hours
from apps.flows.services.sources import eth_rpc_client, etherscan_client, source_backoff_set, source_record
from apps.flows.services.store import StoreResult, flow_rows_delete, flow_rows_store, unix_to_dt

logger = logging.getLogger(__name__)

TOKENS = {USDT: "USDT", USDC: "USDC"}


@dataclass
class EthSyncResult:
    from_block: int | None = None
    to_block: int | None = None
    tip: int | None = None
    logs: int = 0
    malformed: int = 0
    fork_height: int | None = None
    rolled_back: int = 0
    stored: StoreResult = field(default_factory=StoreResult)
    touched: dict[str, set[datetime]] = field(default_factory=dict)
    disabled: bool = False


def eth_transfers_sync(*, from_block: int | None = None, to_block: int | None = None,
                       client: EthRpcClient | None = None) -> EthSyncResult:
    """Scan USDT/USDC Transfer logs touching labelled ETH wallets, with reorg handling.

    Each run re-scans the last ETH_REORG_DEPTH blocks below the cursor. Their stored hashes are
    compared with the node's first: if they differ (reorg.find_fork_point), flows above the fork
    are deleted and the blocks re-ingested. At most ETH_MAX_BLOCKS_PER_RUN blocks per run; the
    first run starts ETH_BACKFILL_BLOCKS below the tip (or at ETH_START_BLOCK).
    """
    result = EthSyncResult()
    own_client = client is None
    client = client or eth_rpc_client()
    if client is None:
        result.disabled = True
        return result
    try:
        _eth_scan(client, result, from_block, to_block)
    except SourceError as exc:
        source_record(client.source, errors=1, last_error=str(exc))
        if isinstance(exc, SourceUnavailable) and exc.status == 429:
            source_backoff_set(source=client.source, retry_after=exc.retry_after)
        raise
    finally:
        if own_client:
            client.close()
    s = result.stored
    source_record(client.source, inserted=s.inserted, unchanged=s.unchanged, malformed=result.malformed)
    for asset, hours in result.touched.items():
        if hours:
            flow_bars_refresh_hours(chain=Chain.ETH, asset=asset, hours=hours)
    return result


def _eth_scan(client: EthRpcClient, result: EthSyncResult, from_block: int | None, to_block: int | None) -> None:
    tip = client.block_number()
    result.tip = tip
    cursor, _ = ChainCursor.objects.get_or_create(chain=Chain.ETH)
    if cursor.height is not None and tip < cursor.height:
        # A lagging node (or a switch of provider) is no reason to roll anything back: wait for it.
        logger.info("%s: node tip %d is below our cursor %d; nothing to do", client.source, tip, cursor.height)
        return
    fork = _eth_fork_point(client, scanned=cursor.height)
    from_block, to_block = _eth_span(tip=tip, scanned=cursor.height, fork=fork, from_block=from_block,
                                     to_block=to_block)
    result.fork_height = fork
    result.from_block, result.to_block = from_block, to_block
    if to_block < from_block and fork is None:
        return
    labels = selectors.wallet_labels(chain=Chain.ETH)
    headers, per_asset = _eth_transfers_fetch(client, result, from_block=from_block, to_block=to_block)
    with transaction.atomic():
        ChainCursor.objects.select_for_update().filter(pk=cursor.pk).values_list("pk").get()
        if fork is not None:
            _eth_roll_back(client, result, fork=fork)
        for asset, txs in per_asset.items():
            stored = flow_rows_store(chain=Chain.ETH, asset=asset, txs=txs, labels=labels)
            result.stored.add(stored)
            result.touched.setdefault(asset, set()).update(stored.touched)
        BlockHash.objects.bulk_create(
            [BlockHash(chain=Chain.ETH, height=h, hash=b.hash, time=unix_to_dt(b.timestamp))
             for h, b in headers.items()],
            update_conflicts=True, unique_fields=["chain", "height"], update_fields=["hash", "time"], batch_size=500,
        )
        BlockHash.objects.filter(chain=Chain.ETH, height__lt=to_block - settings.ETH_BLOCK_HASHES_KEPT).delete()
        if to_block >= from_block:
            cursor.height = max(to_block, cursor.height or 0) if fork is None else to_block
        elif fork is not None:
            cursor.height = fork
        cursor.save(update_fields=["height", "updated_at"])


def _eth_fork_point(client: EthRpcClient, *, scanned: int | None) -> int | None:
    """The height below which our stored block hashes still match the node's (None: no reorg)."""
    if scanned is None:
        return None
    depth = max(1, settings.ETH_REORG_DEPTH)
    stored_hashes = dict(BlockHash.objects.filter(chain=Chain.ETH, height__gte=max(0, scanned - depth + 1),
                                                  height__lte=scanned).values_list("height", "hash"))
    if not stored_hashes:
        return None
    incoming = {h: b.hash for h, b in client.blocks(stored_hashes).items()}
    try:
        return find_fork_point(stored_hashes, incoming)
    except DeepReorg:
        fork = min(stored_hashes) - 1
        logger.warning("%s: reorg deeper than %d blocks; rolling back to %d", client.source, depth, fork)
        return fork


def _eth_span(*, tip: int, scanned: int | None, fork: int | None, from_block: int | None,
              to_block: int | None) -> tuple[int, int]:
    """The blocks of this run: from the cursor (less the re-scanned depth, or the fork), at most
    ETH_MAX_BLOCKS_PER_RUN of them, never past the tip."""
    if from_block is None:
        if scanned is None:
            start = settings.ETH_START_BLOCK
            from_block = int(start) if start is not None else max(0, tip - settings.ETH_BACKFILL_BLOCKS)
        else:
            from_block = max(0, scanned - max(1, settings.ETH_REORG_DEPTH) + 1)
    if fork is not None:
        from_block = min(from_block, fork + 1)
    to_block = min(tip, to_block if to_block is not None else tip, from_block + settings.ETH_MAX_BLOCKS_PER_RUN - 1)
    return from_block, to_block


def _eth_transfers_fetch(client: EthRpcClient, result: EthSyncResult, *, from_block: int,
                         to_block: int) -> tuple[dict[int, BlockHeader], dict[str, list[tuple[Tx, bool]]]]:
    """The blocks' headers and the parsed transfers per asset; raises SourceUnavailable when the
    chain moved between the two requests."""
    wallets = selectors.wallet_addresses(chain=Chain.ETH)
    logs = []
    if wallets and to_block >= from_block:
        logs = client.transfer_logs(
            from_block=from_block, to_block=to_block, tokens=list(TOKENS), wallets=wallets, topic0=TRANSFER_TOPIC,
            chunk_blocks=settings.ETH_LOGS_CHUNK_BLOCKS, wallets_per_query=settings.ETH_LOGS_WALLETS_PER_QUERY,
        )
    result.logs = len(logs)
    heights = {int(h, 16) for log in logs
               if isinstance(log, dict) and isinstance(h := log.get("blockNumber"), str) and h.startswith("0x")}
    heights |= set(range(max(from_block, to_block - max(1, settings.ETH_REORG_DEPTH) + 1), to_block + 1))
    headers = client.blocks(sorted(h for h in heights if from_block <= h <= to_block)) \
        if to_block >= from_block else {}
    block_times = {h: b.timestamp for h, b in headers.items()}
    per_asset: dict[str, list[tuple[Tx, bool]]] = {asset: [] for asset in TOKENS.values()}
    for i, log in enumerate(logs):
        try:
            transfer = parse_transfer_log(log, block_times=block_times)
        except MalformedTx as exc:
            result.malformed += 1
            logger.warning("%s: skipping malformed log [%d] %r: %s", client.source, i, repr(log)[:160], exc.reason)
            continue
        asset = TOKENS.get(transfer.token)
        if asset is None or transfer.removed or transfer.tx.block_height is None:
            continue
        header = headers.get(transfer.tx.block_height)
        block_hash = log.get("blockHash")
        if header is None or (isinstance(block_hash, str) and block_hash.lower() != header.hash):
            # The chain moved between eth_getLogs and eth_getBlockByNumber: try again shortly.
            raise SourceUnavailable(f"block {transfer.tx.block_height} changed during the scan", retry_after=5.0,
                                    source=client.source, url=client.url)
        per_asset[asset].append((transfer.tx, True))
    return headers, per_asset


def _eth_roll_back(client: EthRpcClient, result: EthSyncResult, *, fork: int) -> None:
    gone = flow_rows_delete(FlowTx.objects.filter(chain=Chain.ETH, asset__in=list(TOKENS.values()),
                                                  block_height__gt=fork))
    for asset in TOKENS.values():
        result.touched.setdefault(asset, set()).update(gone.touched)
    result.rolled_back = gone.deleted
    BlockHash.objects.filter(chain=Chain.ETH, height__gt=fork).delete()
    logger.warning("%s: reorg: fork at %d, %d flow rows rolled back", client.source, fork, gone.deleted)


# --- native ETH via Etherscan (optional) ---------------------------------------------------------------


def _native_tx(item: dict) -> Tx:
    """An Etherscan txlist item -> Tx: the sender pays value + gas fee, the receiver gets the value.

    A failed transaction (isError "1") moves no ETH but still burns its fee. Contract creations have
    no receiver (an output without address). Raises MalformedTx.
    """
    def integer(key: str) -> int:
        value = item.get(key)
        if not isinstance(value, str) or not value.isdigit():
            raise MalformedTx(f"{key} is not a decimal integer string")
        return int(value)

    tx_hash = item.get("hash")
    sender, receiver = item.get("from"), item.get("to") or None
    if not isinstance(tx_hash, str) or len(tx_hash) != 66 or not isinstance(sender, str):
        raise MalformedTx("hash or from missing")
    value = 0 if item.get("isError") == "1" else integer("value")
    fee = integer("gasUsed") * integer("gasPrice")
    return Tx(tx_hash.lower(), integer("blockNumber"), integer("timeStamp"), True, ((sender.lower(), value + fee),),
              ((receiver.lower() if isinstance(receiver, str) else None, value),), fee)


def eth_native_sync(*, wallet_id: int, client: EtherscanClient | None = None) -> StoreResult:
    """Native ETH transfers of one labelled ETH wallet from Etherscan, since its block cursor.

    One page (ETHERSCAN_PAGE_SIZE, oldest first) per run, re-reading the last ETH_REORG_DEPTH blocks;
    the cursor stops below the last block of a full page, which may continue on the next one.
    Internal transactions (ETH sent by contracts) are not included. Does nothing without a key.
    """
    client = client or etherscan_client()
    out = StoreResult()
    if client is None:
        return out
    wallet = ExchangeWallet.objects.get(pk=wallet_id, chain=Chain.ETH)
    cursor, _ = AddressCursor.objects.get_or_create(wallet=wallet)
    depth = max(1, settings.ETH_REORG_DEPTH)
    page_size = settings.ETHERSCAN_PAGE_SIZE
    start = max(0, (cursor.tip_height_seen or settings.ETH_NATIVE_START_BLOCK) - depth + 1)
    try:
        items = client.account_txlist(wallet.address, start_block=start, offset=page_size)
    except SourceError as exc:
        source_record(client.source, errors=1, last_error=str(exc))
        raise
    txs, malformed = [], 0
    for item in items:
        try:
            txs.append((_native_tx(item), True))
        except MalformedTx as exc:
            malformed += 1
            logger.warning("%s: skipping malformed transaction %r: %s", client.source, item.get("hash"), exc.reason)
    heights = [tx.block_height for tx, _ in txs]
    with transaction.atomic():
        out = flow_rows_store(chain=Chain.ETH, asset="ETH", txs=txs,
                              labels=selectors.wallet_labels(chain=Chain.ETH))
        if heights:
            cursor.tip_height_seen = max(heights) - (1 if len(items) >= page_size else 0)
            cursor.txs_processed += len(out.new_txids)
            cursor.save(update_fields=["tip_height_seen", "txs_processed", "updated_at"])
    source_record(client.source, inserted=out.inserted, unchanged=out.unchanged, malformed=malformed)
    if out.touched:
        flow_bars_refresh_hours(chain=Chain.ETH, asset="ETH", hours=out.touched)
    return out
