"""Hourly and per-block exchange flow series from :class:`FlowRecord` lists (pure pandas, no ORM).

Definitions (per exchange and bucket; the bucket is the UTC hour of the block time, or the block):

- ``inflow``, ``outflow``, ``internal``, ``fee``: sums of the records' amounts, exact integers in
  the chain's base unit (satoshis or token units; Python ints when int64 could overflow).
- ``netflow`` = inflow - outflow (positive: coins moving onto the exchange, potential sell supply).
- ``inflow_txs`` / ``outflow_txs``: transactions with a positive inflow / outflow for the exchange.
- ``mean_inflow`` = inflow / inflow_txs (NaN without inflows).
- ``whale_ratio`` = sum of the ``whale_n`` largest per-transaction inflows / inflow; 1.0 when there
  are at most ``whale_n`` inflows, NaN without inflow.
- ``netflow_z`` = (netflow - mean) / std over the *preceding* ``z_window`` buckets (the current one
  excluded, so a spike does not dampen itself; sample std), NaN until ``z_min_periods`` buckets of
  history exist and wherever std is 0 (a constant series has no z-score): never inf.

Buckets without flows are filled with zeros between the first and last bucket (or ``start``/``end``)
so the z-score window counts time, not active buckets. Unconfirmed transactions (no block) are left
out, and so are transfers without a block time from the hourly series. The pseudo-exchange ``all``
treats every labelled exchange as one: its inflows and outflows are the flows with the unlabelled
world; exchange-to-exchange transfers are internal to it (counted once, in ``internal``).

Re-processing: records are deduplicated by (txid, exchange, counterparty), the last one winning
(e.g. after a reorg moved the transaction to another block), so feeding the same transactions twice
changes nothing. A transaction re-classified with different labels can produce a different set of
keys: drop its old records by txid before adding the new ones.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from apps.flows.accounting import FlowRecord

__all__ = [
    "ALL",
    "add_usd",
    "dedupe_records",
    "flows_by_block",
    "flows_by_hour",
    "netflow_zscore",
    "whale_ratio",
]

ALL = "all"
HOUR_S = 3600
AMOUNTS = ("inflow", "outflow", "internal", "fee")
_INT64_SAFE = 2**62


def dedupe_records(records: Iterable[FlowRecord]) -> pd.DataFrame:
    """Records as a frame, one row per (txid, exchange, counterparty_exchange): the last one wins.

    Order-independent otherwise, so records read back from storage in any order aggregate the same.
    """
    df = pd.DataFrame.from_records(list(records), columns=FlowRecord._fields)
    return df.drop_duplicates(subset=["txid", "exchange", "counterparty_exchange"], keep="last", ignore_index=True)


def _exact(values: pd.Series) -> pd.Series:
    """int64 when every sum fits, else Python ints (object): flows are never silently wrapped."""
    if values.dtype == object:
        return values
    if len(values) and float(values.abs().max()) * len(values) >= _INT64_SAFE:
        return values.astype(object)
    return values


def _exact_amounts(df: pd.DataFrame) -> None:
    """_exact for every amount column, with one dtype for all: a transfer moves amounts between them."""
    if any(_exact(df[col]).dtype == object for col in AMOUNTS):
        for col in AMOUNTS:
            df[col] = df[col].astype(object)


def _per_tx(df: pd.DataFrame, include_all: bool) -> pd.DataFrame:
    """One row per (exchange, txid): the record amounts summed over counterparties."""
    df = df[df["block_height"].notna()].rename(columns={f"{a}_sat": a for a in AMOUNTS}).copy()
    _exact_amounts(df)
    spec = {**{a: "sum" for a in AMOUNTS}, "block_height": "first", "block_time": "first"}
    parts = [df.groupby(["exchange", "txid"], sort=False).agg(spec).reset_index()]
    if include_all:
        # Seen from "all", an exchange-to-exchange transfer is internal: count it once, by its sending side.
        e2e = df["exchange_to_exchange"].astype(bool)
        whole = df[~e2e | (df["outflow"] > 0)].copy()
        moved = e2e[whole.index]
        whole.loc[moved, "internal"] = whole.loc[moved, "outflow"]
        whole.loc[moved, "outflow"] = 0
        whole.loc[moved, "inflow"] = 0
        total = whole.groupby("txid", sort=False).agg(spec).reset_index()
        total.insert(0, "exchange", ALL)
        parts.append(total)
    out = pd.concat(parts, ignore_index=True)
    _exact_amounts(out)
    out["block_height"] = out["block_height"].astype("int64")
    # Token transfers may lack a block time (float with NaN then); hourly series need it, block series do not.
    out["block_time"] = pd.to_numeric(out["block_time"])
    return out


def whale_ratio(inflows: Iterable[int], n: int = 10) -> float:
    """Share of the total inflow carried by the ``n`` largest inflows; NaN when the total is 0."""
    values = sorted((v for v in inflows if v > 0), reverse=True)
    total = sum(values)
    return float(sum(values[:n]) / total) if total else float("nan")


def netflow_zscore(netflow: pd.Series, window: int, min_periods: int | None = None) -> pd.Series:
    """z-score of each bucket against the ``window`` buckets before it; NaN (never inf) when undefined."""
    x = netflow.astype("float64")
    prior = x.shift(1).rolling(window, min_periods=window if min_periods is None else min_periods)
    mean, std = prior.mean(), prior.std(ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x - mean) / std
    return z.where((std > 0) & np.isfinite(z))


def _aggregate(per_tx: pd.DataFrame, key: str, grid: pd.Index, whale_n: int, z_window: int,
               z_min_periods: int | None) -> pd.DataFrame:
    keys = ["exchange", key]
    flags = per_tx.assign(inflow_txs=per_tx["inflow"] > 0, outflow_txs=per_tx["outflow"] > 0)
    sums = flags.groupby(keys)[[*AMOUNTS, "inflow_txs", "outflow_txs"]].sum()
    top = (
        flags[flags["inflow_txs"]]
        .sort_values("inflow", ascending=False, kind="stable")
        .groupby(keys)
        .head(whale_n)
        .groupby(keys)["inflow"]
        .sum()
        .rename("top_inflow")
    )
    full = pd.MultiIndex.from_product([sorted(per_tx["exchange"].unique()), grid], names=keys)
    out = sums.reindex(full, fill_value=0)
    out["top_inflow"] = top.reindex(full, fill_value=0)
    out = out.reset_index()
    out["netflow"] = _exact(out["inflow"] - out["outflow"])
    inflow = out["inflow"].astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        out["mean_inflow"] = (inflow / out["inflow_txs"]).where(out["inflow_txs"] > 0)
        out["whale_ratio"] = (out["top_inflow"].astype("float64") / inflow).where(inflow > 0)
    out["netflow_z"] = out.groupby("exchange", sort=False)["netflow"].transform(
        lambda s: netflow_zscore(s, z_window, z_min_periods))
    columns = ["exchange", key, "inflow", "outflow", "netflow", "internal", "fee", "inflow_txs", "outflow_txs",
               "mean_inflow", "whale_ratio", "netflow_z"]
    return out[columns]


def _empty(key: str) -> pd.DataFrame:
    return pd.DataFrame(columns=["exchange", key, "inflow", "outflow", "netflow", "internal", "fee", "inflow_txs",
                                 "outflow_txs", "mean_inflow", "whale_ratio", "netflow_z"])


def flows_by_hour(
    records: Iterable[FlowRecord],
    *,
    whale_n: int = 10,
    z_window: int = 30 * 24,
    z_min_periods: int | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    include_all: bool = True,
) -> pd.DataFrame:
    """Per exchange (and ``all``) per UTC hour; ``bucket_start`` is the hour's start (tz-aware UTC).

    ``z_window`` is in hours (default 30 days). ``start``/``end`` widen the zero-filled grid.
    """
    per_tx = _per_tx(dedupe_records(records), include_all)
    per_tx = per_tx[per_tx["block_time"].notna()].copy()
    if per_tx.empty:
        return _empty("bucket_start")
    hour = per_tx["block_time"].astype("int64") // HOUR_S * HOUR_S
    per_tx["bucket_start"] = pd.to_datetime(hour, unit="s", utc=True)
    first, last = per_tx["bucket_start"].min(), per_tx["bucket_start"].max()
    if start is not None:
        first = min(first, pd.Timestamp(start).tz_convert("UTC").floor("h"))
    if end is not None:
        last = max(last, pd.Timestamp(end).tz_convert("UTC").floor("h"))
    grid = pd.date_range(first, last, freq="h", name="bucket_start")
    return _aggregate(per_tx, "bucket_start", grid, whale_n, z_window, z_min_periods)


def flows_by_block(
    records: Iterable[FlowRecord],
    *,
    whale_n: int = 10,
    z_window: int = 30 * 144,
    z_min_periods: int | None = None,
    include_all: bool = True,
) -> pd.DataFrame:
    """Per exchange (and ``all``) per block height, plus the block's ``block_time`` (NaN for empty blocks).

    ``z_window`` is in blocks (default ~30 days of Bitcoin blocks; use 216,000 for Ethereum).
    """
    per_tx = _per_tx(dedupe_records(records), include_all)
    if per_tx.empty:
        return _empty("block_height").assign(block_time=pd.Series(dtype="float64"))
    grid = pd.RangeIndex(per_tx["block_height"].min(), per_tx["block_height"].max() + 1, name="block_height")
    out = _aggregate(per_tx, "block_height", grid, whale_n, z_window, z_min_periods)
    times = per_tx.groupby("block_height")["block_time"].max()
    out.insert(2, "block_time", out["block_height"].map(times))
    return out


def add_usd(frame: pd.DataFrame, close: pd.Series, *, decimals: int) -> pd.DataFrame:
    """Add ``price_usd``, ``inflow_usd``, ``outflow_usd``, ``netflow_usd`` to a flows frame.

    ``close`` is an hourly USD close indexed by the hour's start (as exchange klines are): a flow is
    valued at the close of the hour it was mined in (for blocks: the hour of the block time).
    Amounts are divided by 10**decimals (8 for BTC, 6 for USDT/USDC, 18 for ETH). Hours without a
    price get NaN; nothing is forward-filled, so a gap in prices shows as a gap.
    """
    prices = close.copy()
    prices.index = pd.to_datetime(prices.index, utc=True).floor("h")
    if prices.index.has_duplicates:
        raise ValueError("price series has more than one close per hour")
    if "bucket_start" in frame:
        hours = pd.to_datetime(frame["bucket_start"], utc=True)
    else:
        hours = pd.to_datetime(frame["block_time"] // HOUR_S * HOUR_S, unit="s", utc=True)
    out = frame.copy()
    out["price_usd"] = prices.reindex(hours).to_numpy(dtype="float64")
    scale = 10.0**decimals
    for col in ("inflow", "outflow", "netflow"):
        out[f"{col}_usd"] = out[col].astype("float64") / scale * out["price_usd"]
    return out
