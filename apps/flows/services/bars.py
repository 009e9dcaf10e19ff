"""Hourly flow bars from final FlowTx rows, their netflow z-scores, and the live push to pages."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from apps.flows import selectors
from apps.flows.aggregate import add_usd, flows_by_hour, netflow_zscore
from apps.flows.models import ALL_EXCHANGES, ASSET_DECIMALS, ChainCursor, FlowBar
from apps.flows.services.store import flows_changed, unix_to_dt
from apps.flows.signals import flow_bars_changed
from pressureweb.lib.channels import group_send
from pressureweb.lib.times import iso_z

logger = logging.getLogger(__name__)

FLOWS_GROUP = "flows"
HOUR = timedelta(hours=1)
_BAR_FIELDS = ("inflow", "outflow", "netflow", "internal", "fee", "inflow_txs", "outflow_txs", "mean_inflow",
               "whale_ratio", "price_usd", "inflow_usd", "outflow_usd", "netflow_usd", "reserve")


def _float_or_none(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def flow_bars_refresh_hours(*, chain: str, asset: str, hours: Iterable[datetime], publish: bool = True) -> int:
    """Refresh the bars of the touched hours, one contiguous run of hours at a time."""
    ordered = sorted({selectors.floor_hour(h) for h in hours})
    changed = 0
    run_start = prev = None
    for hour in ordered:
        if run_start is None:
            run_start = prev = hour
        elif hour - prev > HOUR * 24:  # gaps of a day or less are cheaper refreshed in one go
            changed += flow_bars_refresh(chain=chain, asset=asset, start=run_start, end=prev, publish=publish)
            run_start = hour
        prev = hour
    if run_start is not None:
        changed += flow_bars_refresh(chain=chain, asset=asset, start=run_start, end=prev, publish=publish)
    return changed


def _bars_compute(*, chain: str, asset: str, start: datetime, end: datetime) -> tuple[list[FlowBar], set]:
    """The bars of [start, end] from the stored rows, and the (exchange, hour) pairs that have flows."""
    records = selectors.flow_records(chain=chain, asset=asset, start=start, end=end + HOUR)
    present = {(r.exchange, selectors.floor_hour(unix_to_dt(r.block_time))) for r in records}
    present |= {(ALL_EXCHANGES, hour) for _, hour in present}
    if not records:
        return [], present
    frame = flows_by_hour(records, whale_n=settings.WHALE_TOP_N, start=pd.Timestamp(start), end=pd.Timestamp(end))
    frame = frame[[(x, t.to_pydatetime()) in present
                   for x, t in zip(frame["exchange"], frame["bucket_start"], strict=True)]]
    frame = add_usd(frame, selectors.hourly_close_usd(asset=asset, start=start, end=end),
                    decimals=ASSET_DECIMALS[asset])
    reserves = selectors.reserves_by_hour(chain=chain, asset=asset, start=start, end=end)
    bars = []
    for row in frame.itertuples(index=False):
        hour = row.bucket_start.to_pydatetime()
        bars.append(FlowBar(
            chain=chain, asset=asset, exchange=row.exchange, interval="1h", bucket_start=hour,
            inflow=int(row.inflow), outflow=int(row.outflow), netflow=int(row.netflow),
            internal=int(row.internal), fee=int(row.fee), inflow_txs=int(row.inflow_txs),
            outflow_txs=int(row.outflow_txs), mean_inflow=_float_or_none(row.mean_inflow),
            whale_ratio=_float_or_none(row.whale_ratio), price_usd=_float_or_none(row.price_usd),
            inflow_usd=_float_or_none(row.inflow_usd), outflow_usd=_float_or_none(row.outflow_usd),
            netflow_usd=_float_or_none(row.netflow_usd), reserve=reserves.get((row.exchange, hour)),
        ))
    return bars, present


def flow_bars_refresh(*, chain: str, asset: str, start: datetime, end: datetime, publish: bool = True) -> int:
    """Recompute the hourly bars of the hours starting in [start, end] from final FlowTx rows.

    An exchange gets a bar for an hour when it has flows in it (``all`` whenever any exchange
    does). Sums, counts, mean inflow and whale ratio come from apps.flows.aggregate.flows_by_hour
    over the hour's rows; netflow_z is then recomputed for the touched hours and the
    NETFLOW_Z_WINDOW_DAYS after them, from the stored netflows with empty hours as zero. USD values
    use our hourly close; the reserve comes from that hour's ReserveSnapshot. Pushes the changed
    bars to the "flows" group after commit.
    """
    start, end = selectors.floor_hour(start), selectors.floor_hour(end)
    if end < start:
        start, end = end, start
    with transaction.atomic():
        # One refresh per chain at a time: each sees every row committed before it took the lock.
        cursor, _ = ChainCursor.objects.get_or_create(chain=chain)
        ChainCursor.objects.select_for_update().filter(pk=cursor.pk).values_list("pk").get()
        bars, present = _bars_compute(chain=chain, asset=asset, start=start, end=end)
        in_range = FlowBar.objects.filter(chain=chain, asset=asset, interval="1h", bucket_start__gte=start,
                                          bucket_start__lte=end)
        stale = [pk for pk, x, t in in_range.values_list("pk", "exchange", "bucket_start") if (x, t) not in present]
        if stale:
            FlowBar.objects.filter(pk__in=stale).delete()
        if bars:
            FlowBar.objects.bulk_create(
                bars, batch_size=500, update_conflicts=True,
                unique_fields=["chain", "asset", "exchange", "interval", "bucket_start"],
                update_fields=[*_BAR_FIELDS, "updated_at"],
            )
        z_changed = _netflow_z_refresh(chain=chain, asset=asset, start=start, end=end)
        if bars or stale or z_changed:
            flows_changed()
        if publish and (bars or stale):
            transaction.on_commit(lambda: flows_publish(chain=chain, asset=asset, start=start, end=end))
        transaction.on_commit(lambda: flow_bars_changed.send(sender=FlowBar, chain=chain, asset=asset))
    return len(bars) + len(stale)


def _netflow_z_refresh(*, chain: str, asset: str, start: datetime, end: datetime) -> int:
    window = settings.NETFLOW_Z_WINDOW_DAYS * 24
    min_periods = min(window, settings.NETFLOW_Z_MIN_HOURS)
    qs = FlowBar.objects.filter(chain=chain, asset=asset, interval="1h")
    first = qs.aggregate(first=Min("bucket_start"))["first"]
    if first is None:
        return 0
    lo = max(first, start - window * HOUR)
    hi = end + window * HOUR
    rows = list(qs.filter(bucket_start__gte=lo, bucket_start__lte=hi)
                .values_list("pk", "exchange", "bucket_start", "netflow", "netflow_z"))
    if not rows:
        return 0
    last = max(r[2] for r in rows)
    grid = pd.date_range(lo, last, freq="h")
    by_exchange: dict[str, list] = {}
    for row in rows:
        by_exchange.setdefault(row[1], []).append(row)
    updates = []
    for items in by_exchange.values():
        series = pd.Series({pd.Timestamp(t): float(int(n)) for _, _, t, n, _ in items}, dtype="float64")
        z = netflow_zscore(series.reindex(grid, fill_value=0.0), window, min_periods)
        for pk, _, t, _, old in items:
            if t < start:
                continue
            new = _float_or_none(z.get(pd.Timestamp(t)))
            if new != old and not (new is None and old is None):
                updates.append(FlowBar(pk=pk, netflow_z=new))
    FlowBar.objects.bulk_update(updates, ["netflow_z"], batch_size=500)
    return len(updates)


def flow_bars_refresh_recent(*, hours: int = 3) -> int:
    """Refresh the last few hours of every series: prices and reserves arrive after the flows."""
    now = timezone.now()
    changed = 0
    for chain, asset in selectors.assets_with_bars():
        changed += flow_bars_refresh(chain=chain, asset=asset, start=now - hours * HOUR, end=now)
    return changed


def flows_publish(*, chain: str, asset: str, start: datetime, end: datetime) -> None:
    """Send the bars of [start, end] to the "flows" group; pages merge them by (asset, exchange, hour)."""
    rows = selectors.flow_bars(chain=chain, asset=asset, start=start, end=end + HOUR)
    try:
        group_send([(FLOWS_GROUP, {
            "type": "flows.update", "chain": chain, "asset": asset, "bars": rows[-500:],
            "pending": [{**p, "oldest": iso_z(p["oldest"])}
                        for p in selectors.pending_inflows(chain=chain, asset=asset)],
        })])
    except Exception:  # a live push must never fail the sync that already committed
        logger.exception("flows live push failed for %s %s", chain, asset)
