"""Reads of exchange wallets and flows, shaped for the services, the page, the API and live pushes."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
from django.conf import settings
from django.db.models import Count, Max, Min, Q, Sum

from apps.flows.accounting import FlowRecord
from apps.flows.models import (
    ALL_EXCHANGES,
    ASSET_CHAIN,
    ASSET_DECIMALS,
    STABLECOINS,
    ExchangeWallet,
    FlowBar,
    FlowSample,
    FlowTx,
    ReserveSnapshot,
)
from apps.pressure.models import PressureBar
from pressureweb.lib.times import dt_to_ms, iso_z, ms_to_dt
from pressureweb.lib.times import iso_z as iso  # noqa: F401 - apps.api.views still imports it from here
from pressureweb.payload_cache import version_get

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
FLOWS_VERSION_KEY = "flows:version"

# The public API contract: these names never change. Amounts are exact decimal strings in coins.
API_FIELDS = (
    "bucket_start", "exchange", "inflow", "outflow", "netflow", "internal", "fee", "inflow_txs", "outflow_txs",
    "mean_inflow", "whale_ratio", "netflow_z", "price_usd", "inflow_usd", "outflow_usd", "netflow_usd", "reserve",
)
_AMOUNTS = ("inflow", "outflow", "netflow", "internal", "fee")
_FLOATS = ("whale_ratio", "netflow_z", "price_usd", "inflow_usd", "outflow_usd", "netflow_usd")
# Our own hourly closes value the flows: live Binance first, the bundled replay otherwise.
PRICE_SOURCES = {"BTC": ("BTCUSDT", ("binance", "binance-replay")), "ETH": ("ETHUSDT", ("binance", "binance-replay"))}

_label_cache: dict[str, tuple[tuple, dict[str, str]]] = {}


def floor_hour(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(dt: datetime) -> datetime:
    floor = floor_hour(dt)
    return floor if floor == dt else floor + HOUR


def coins(units, decimals: int) -> str | None:
    """Base units -> exact coin text without exponent or padding zeros: 150000000 (8) -> '1.5'."""
    if units is None:
        return None
    text = format(Decimal(units).scaleb(-decimals), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


# --- wallets ---------------------------------------------------------------------------------------


def wallet_labels(*, chain: str) -> dict[str, str]:
    """Address -> exchange slug of the active wallets of ``chain``.

    Cached per process and rebuilt when the wallets change (count or newest updated_at), so a
    sync of many pages classifies against one map without re-reading hundreds of rows each time.
    """
    stamp = tuple(ExchangeWallet.objects.filter(chain=chain).aggregate(
        n=Count("id"), active=Count("id", filter=Q(active=True)), changed=Max("updated_at")).values())
    cached = _label_cache.get(chain)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    labels = dict(ExchangeWallet.objects.filter(chain=chain, active=True).values_list("address", "exchange"))
    _label_cache[chain] = (stamp, labels)
    return labels


def wallet_ids_to_poll(*, chain: str) -> list[int]:
    return list(ExchangeWallet.objects.filter(chain=chain, active=True).order_by("pk").values_list("pk", flat=True))


def wallet_addresses(*, chain: str) -> list[str]:
    return list(ExchangeWallet.objects.filter(chain=chain, active=True).order_by("address")
                .values_list("address", flat=True))


def wallet_counts() -> dict[str, int]:
    rows = ExchangeWallet.objects.filter(active=True).values("chain").annotate(n=Count("id"))
    return {r["chain"]: r["n"] for r in rows}


def exchange_known(*, chain: str, exchange: str) -> bool:
    return exchange == ALL_EXCHANGES or ExchangeWallet.objects.filter(chain=chain, exchange=exchange).exists()


# --- flow records and prices (inputs of the bar computation) -----------------------------------------


def _record(row: dict) -> FlowRecord:
    block_time = row["block_time"]
    return FlowRecord(
        row["txid"], row["exchange"], int(row["inflow"]), int(row["outflow"]), int(row["internal"]),
        row["counterparty"] or None, row["exchange_to_exchange"], row["block_height"],
        None if block_time is None else int(block_time.timestamp()), int(row["fee"]),
    )


def flow_records(*, chain: str, asset: str, start: datetime, end: datetime) -> list[FlowRecord]:
    """Final flows of ``asset`` mined in [start, end), as accounting FlowRecords."""
    rows = (FlowTx.objects.final().filter(chain=chain, asset=asset, block_time__gte=start, block_time__lt=end)
            .values("txid", "exchange", "inflow", "outflow", "internal", "counterparty", "exchange_to_exchange",
                    "block_height", "block_time", "fee"))
    return [_record(r) for r in rows]


def hourly_close_usd(*, asset: str, start: datetime, end: datetime) -> pd.Series:
    """USD close per hour start in [start, end]: our 1h PressureBar closes; stablecoins at 1 USD.

    Hours without a bar are missing from the series (their USD values become null, never filled).
    """
    start, end = floor_hour(start), floor_hour(end)
    if asset in STABLECOINS:
        return pd.Series(1.0, index=pd.date_range(start, end, freq="h", tz="UTC"), dtype="float64")
    symbol, exchanges = PRICE_SOURCES.get(asset, (None, ()))
    for exchange in exchanges:
        rows = list(PressureBar.objects.filter(
            instrument__exchange__slug=exchange, instrument__market="spot", instrument__symbol=symbol, interval="1h",
            bucket_start__gte=start, bucket_start__lte=end,
        ).exclude(close=None).order_by("bucket_start").values_list("bucket_start", "close"))
        if rows:
            index = pd.DatetimeIndex([t for t, _ in rows]).tz_convert("UTC")
            return pd.Series([float(c) for _, c in rows], index=index, dtype="float64")
    return pd.Series(dtype="float64", index=pd.DatetimeIndex([], tz="UTC"))


def reserves_by_hour(*, chain: str, asset: str, start: datetime, end: datetime) -> dict[tuple[str, datetime], int]:
    rows = ReserveSnapshot.objects.filter(chain=chain, asset=asset, time__gte=start, time__lte=end)
    return {(r.exchange, r.time): int(r.balance) for r in rows}


# --- bars --------------------------------------------------------------------------------------------


_STORED = ("bucket_start", "chain", "asset", "exchange", *_AMOUNTS, "inflow_txs", "outflow_txs", "mean_inflow",
           *_FLOATS, "reserve")


def flow_bar_serialize(bar: FlowBar) -> dict:
    return _flow_bar_row({name: getattr(bar, name) for name in _STORED})


def _flow_bar_row(bar: dict) -> dict:
    decimals = ASSET_DECIMALS[bar["asset"]]
    row = {"bucket_start": iso_z(bar["bucket_start"]), "chain": bar["chain"], "asset": bar["asset"],
           "exchange": bar["exchange"]}
    for name in _AMOUNTS:
        row[name] = coins(bar[name], decimals)
    row["inflow_txs"] = bar["inflow_txs"]
    row["outflow_txs"] = bar["outflow_txs"]
    row["mean_inflow"] = None if bar["mean_inflow"] is None else bar["mean_inflow"] / 10**decimals
    for name in _FLOATS:
        row[name] = bar[name]
    row["reserve"] = coins(bar["reserve"], decimals)
    return row


def flow_bars(*, chain: str, asset: str, start: datetime, end: datetime, exchange: str | None = None,
              exchanges: Collection[str] | None = None, interval: str = "1h") -> list[dict]:
    """Bars with bucket_start in [start, end), oldest first; every exchange (and all) unless ``exchange`` or
    ``exchanges`` names the ones wanted."""
    qs = FlowBar.objects.filter(chain=chain, asset=asset, interval=interval, bucket_start__gte=start,
                                bucket_start__lt=end)
    if exchange:
        qs = qs.filter(exchange=exchange)
    if exchanges is not None:
        qs = qs.filter(exchange__in=list(exchanges))
    # Read as plain values: a page rebuild reads thousands of bars, and model instances cost more than the rest.
    return [_flow_bar_row(b) for b in qs.order_by("bucket_start", "exchange").values(*_STORED)]


def flow_bars_count(*, chain: str, asset: str, start: datetime, end: datetime) -> int:
    return FlowBar.objects.filter(chain=chain, asset=asset, bucket_start__gte=start, bucket_start__lt=end).count()


def flow_exchanges_ranked(*, chain: str, asset: str, start: datetime, end: datetime, limit: int) -> list[str]:
    """Exchanges with the largest gross flows in the range, biggest first (``all`` excluded)."""
    rows = list(FlowBar.objects.filter(chain=chain, asset=asset, bucket_start__gte=start, bucket_start__lt=end)
                .exclude(exchange=ALL_EXCHANGES).values_list("exchange", "inflow", "outflow"))
    gross: dict[str, int] = defaultdict(int)
    for exchange, inflow, outflow in rows:
        gross[exchange] += int(inflow) + int(outflow)
    return sorted(gross, key=lambda x: (-gross[x], x))[:limit]


def flow_bar_latest(*, asset: str, exchange: str = ALL_EXCHANGES) -> FlowBar | None:
    """The newest hourly bar of an asset (for alerts on netflow_z / whale_ratio)."""
    return (FlowBar.objects.filter(chain=ASSET_CHAIN[asset], asset=asset, exchange=exchange, interval="1h")
            .order_by("-bucket_start").first())


def pending_inflows(*, chain: str, asset: str) -> list[dict]:
    """Inflow not yet final (unconfirmed or too few confirmations), per exchange, largest first."""
    decimals = ASSET_DECIMALS[asset]
    rows = (FlowTx.objects.pending().filter(chain=chain, asset=asset)
            .values_list("exchange", "txid", "inflow", "created_at", "block_height"))
    per: dict[str, dict] = {}
    for exchange, txid, inflow, created, height in rows:
        if not inflow:
            continue
        item = per.setdefault(exchange, {"exchange": exchange, "units": 0, "txids": set(), "oldest": created,
                                         "unconfirmed": 0})
        item["units"] += int(inflow)
        item["txids"].add(txid)
        item["oldest"] = min(item["oldest"], created)
        item["unconfirmed"] += height is None
    out = []
    for item in sorted(per.values(), key=lambda i: -i["units"]):
        out.append({"exchange": item["exchange"], "inflow": coins(item["units"], decimals),
                    "inflow_float": item["units"] / 10**decimals, "txs": len(item["txids"]),
                    "unconfirmed": item["unconfirmed"], "oldest": item["oldest"]})
    return out


def flows_summary() -> dict:
    """What has been collected at all: drives the page's empty state."""
    flows = FlowTx.objects.aggregate(n=Count("id"), pending=Count("id", filter=Q(confirmed=False)),
                                     newest=Max("block_time"))
    bars = FlowBar.objects.aggregate(n=Count("id"), first=Min("bucket_start"), last=Max("bucket_start"))
    return {"wallets": wallet_counts(), "flow_txs": flows["n"], "pending_txs": flows["pending"],
            "newest_block_time": flows["newest"], "bars": bars["n"], "first_bar": bars["first"],
            "last_bar": bars["last"]}


def flow_samples() -> list[dict]:
    """The recorded samples stored (manage.py load_flow_samples), newest first, with the hours their bars are in."""
    out = []
    for s in FlowSample.objects.order_by("-end"):
        out.append({"key": s.key, "chain": s.chain, "assets": s.asset_list, "description": s.description,
                    "start": s.start, "end": s.end, "inflows_only": s.inflows_only, "source": s.source,
                    "first_height": s.first_height, "last_height": s.last_height,
                    "hour_start": floor_hour(s.start), "hour_end": floor_hour(s.end) + HOUR})
    return out


def assets_with_bars() -> list[tuple[str, str]]:
    return list(FlowBar.objects.values_list("chain", "asset").distinct().order_by("chain", "asset"))


def flow_totals(*, chain: str, asset: str, start: datetime, end: datetime, exchange: str = ALL_EXCHANGES) -> dict:
    """Sums over the range for the headline numbers (coins)."""
    agg = FlowBar.objects.filter(chain=chain, asset=asset, exchange=exchange, bucket_start__gte=start,
                                 bucket_start__lt=end).aggregate(n=Count("id"), inflow_txs=Sum("inflow_txs"),
                                                                 outflow_txs=Sum("outflow_txs"))
    # Amounts are exact text on SQLite: summed in Python, never in SQL.
    rows = FlowBar.objects.filter(chain=chain, asset=asset, exchange=exchange, bucket_start__gte=start,
                                  bucket_start__lt=end).values_list("inflow", "outflow")
    inflow = sum(int(i) for i, _ in rows)
    outflow = sum(int(o) for _, o in rows)
    decimals = ASSET_DECIMALS[asset]
    return {"bars": agg["n"], "inflow": coins(inflow, decimals), "outflow": coins(outflow, decimals),
            "netflow": coins(inflow - outflow, decimals), "inflow_txs": agg["inflow_txs"] or 0,
            "outflow_txs": agg["outflow_txs"] or 0}


def flow_components_hourly(*, asset: str, start: datetime, end: datetime) -> pd.DataFrame:
    """netflow_z and whale_ratio of all exchanges per hour, indexed by bucket start in ms (SPI inputs)."""
    rows = (FlowBar.objects.filter(asset=asset.upper(), exchange=ALL_EXCHANGES, interval="1h",
                                   bucket_start__gte=floor_hour(start), bucket_start__lt=end)
            .order_by("bucket_start").values_list("bucket_start", "netflow_z", "whale_ratio"))
    frame = pd.DataFrame(list(rows), columns=["bucket_start", "netflow_z", "whale_ratio"])
    frame.index = [dt_to_ms(ts) for ts in frame.pop("bucket_start")]
    return frame.astype("float64")


BLOCK_FIELDS = ("block_height", "block_time", "exchange", "inflow", "outflow", "netflow", "internal", "fee",
                "inflow_txs", "outflow_txs", "mean_inflow", "whale_ratio", "netflow_z")


def flow_blocks(*, chain: str, asset: str, start: datetime, end: datetime, exchange: str | None = None) -> list[dict]:
    """Flows per block (computed from the stored per-transaction flows; amounts in coins)."""
    from apps.flows.aggregate import flows_by_block

    records = flow_records(chain=chain, asset=asset, start=start, end=end)
    if not records:
        return []
    frame = flows_by_block(records, whale_n=settings.WHALE_TOP_N, z_window=30 * 144 if chain == "btc" else 216_000)
    if exchange:
        frame = frame[frame["exchange"] == exchange]
    decimals = ASSET_DECIMALS[asset]
    out = []
    for row in frame.reset_index(drop=True).to_dict("records"):
        if pd.isna(row["block_time"]):
            continue
        item = {"block_height": int(row["block_height"]), "block_time": iso_z(ms_to_dt(
            int(row["block_time"]) * 1000)), "exchange": row["exchange"]}
        for name in ("inflow", "outflow", "netflow", "internal", "fee"):
            item[name] = coins(int(row[name]), decimals)
        item["inflow_txs"], item["outflow_txs"] = int(row["inflow_txs"]), int(row["outflow_txs"])
        for name in ("mean_inflow", "whale_ratio", "netflow_z"):
            value = row[name]
            item[name] = None if pd.isna(value) else float(value) / (10**decimals if name == "mean_inflow" else 1)
        out.append(item)
    return out


# --- the /flows/ page ----------------------------------------------------------------------------------


def flows_version() -> int | None:
    """Bumped after every write the flows page shows (services.flows_version_bump): flows, bars, labels.

    None when Redis is unreachable: readers then go to the database instead of failing.
    """
    return version_get(FLOWS_VERSION_KEY, what="flows")
