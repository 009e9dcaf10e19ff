"""Exchange wallets, their sync cursors, per-transaction exchange flows and hourly flow bars.

Amounts are integers in the chain's base unit (satoshis for BTC, token units for USDT/USDC, wei
for ETH), stored exactly with ExactDecimalField (0 decimals): wei and token sums overflow 64 bits.
Selectors turn them into coin amounts.
"""

from __future__ import annotations

from django.db import models

from apps.markets.fields import ExactDecimalField

AMOUNT_DIGITS = 40  # 10**40 base units: far above any supply, in wei as well


def amount_field(**kwargs) -> ExactDecimalField:
    return ExactDecimalField(max_digits=AMOUNT_DIGITS, decimal_places=0, **kwargs)


class Chain(models.TextChoices):
    BTC = "btc", "Bitcoin"
    ETH = "eth", "Ethereum"


class Asset(models.TextChoices):
    BTC = "BTC", "Bitcoin"
    ETH = "ETH", "Ether"
    USDT = "USDT", "Tether USD (ERC-20)"
    USDC = "USDC", "USD Coin (ERC-20)"


ASSET_CHAIN = {"BTC": "btc", "ETH": "eth", "USDT": "eth", "USDC": "eth"}
ASSET_DECIMALS = {"BTC": 8, "ETH": 18, "USDT": 6, "USDC": 6}
STABLECOINS = ("USDT", "USDC")
ALL_EXCHANGES = "all"  # the pseudo-exchange of every labelled exchange taken as one


class ExchangeWallet(models.Model):
    """A publicly labelled exchange address. Inactive wallets are neither polled nor used as labels."""

    class Label(models.TextChoices):
        HOT = "hot", "Hot wallet"
        COLD = "cold", "Cold wallet"
        DEPOSIT = "deposit", "Deposit address"
        RESERVE = "reserve", "Proof-of-reserves wallet"
        UNKNOWN = "unknown", "Unknown role"

    chain = models.CharField(max_length=3, choices=Chain.choices)
    address = models.CharField(max_length=90, help_text="Normalised: bech32 and Ethereum lowercase, Base58 as is.")
    exchange = models.SlugField(max_length=64, help_text="Exchange slug, e.g. binance, coinbase, okx.")
    label = models.CharField(max_length=8, choices=Label.choices, default=Label.UNKNOWN)
    source = models.CharField(max_length=255, blank=True, help_text="Where the label came from.")
    first_seen = models.DateTimeField(
        null=True, blank=True, help_text="Block time (UTC) of the oldest transaction of this address processed so far.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["chain", "exchange", "address"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "address"], name="exchangewallet_unique_chain_address"),
        ]
        indexes = [models.Index(fields=["chain", "exchange"], name="exchangewallet_chain_exchange")]

    def __str__(self) -> str:
        return f"{self.chain}:{self.exchange}:{self.address}"


class AddressCursor(models.Model):
    """How far one wallet's history has been walked (Esplora lists transactions newest first).

    ``last_seen_txid`` is the newest final transaction (enough confirmations) such that it and
    everything older has been processed: a walk from the top stops there. A walk cut short by the
    per-run page cap continues after ``walk_resume_txid`` next run; ``walk_head_txid`` is the first
    final transaction of that walk and becomes ``last_seen_txid`` when it finishes.
    """

    wallet = models.OneToOneField(ExchangeWallet, on_delete=models.CASCADE, related_name="cursor")
    last_seen_txid = models.CharField(max_length=80, blank=True)
    walk_resume_txid = models.CharField(max_length=80, blank=True)
    walk_head_txid = models.CharField(max_length=80, blank=True)
    tip_height_seen = models.BigIntegerField(null=True, blank=True)
    chain_tx_count = models.BigIntegerField(null=True, blank=True, help_text="Confirmed txs at the last full walk.")
    mempool_tx_count = models.BigIntegerField(null=True, blank=True)
    has_pending = models.BooleanField(default=False, help_text="The last walk saw under-confirmed transactions.")
    balance = amount_field(null=True, blank=True, help_text="Confirmed balance in base units (satoshis).")
    txs_processed = models.BigIntegerField(default=0, help_text="Transactions stored for the first time, in total.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"cursor of {self.wallet}"


class ChainCursor(models.Model):
    """Per chain: the last block scanned (Ethereum logs). Its row also serialises bar refreshes."""

    chain = models.CharField(max_length=3, choices=Chain.choices, unique=True)
    height = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.chain} at {self.height}"


class BlockHash(models.Model):
    """Block hashes (and times) of scanned blocks, compared run to run to detect reorganisations."""

    chain = models.CharField(max_length=3, choices=Chain.choices)
    height = models.BigIntegerField()
    hash = models.CharField(max_length=66)
    time = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["chain", "-height"]
        constraints = [models.UniqueConstraint(fields=["chain", "height"], name="blockhash_unique_height")]

    def __str__(self) -> str:
        return f"{self.chain} #{self.height} {self.hash[:18]}…"


class FlowTxQuerySet(models.QuerySet):
    def final(self):
        return self.filter(confirmed=True)

    def pending(self):
        return self.filter(confirmed=False)


class FlowTx(models.Model):
    """One exchange's flows in one transaction with one counterparty (apps.flows.accounting.FlowRecord).

    ``counterparty`` is another exchange's slug for exchange-to-exchange transfers, or "" for the
    unlabelled world (that row also carries the exchange's internal amount and fee share).
    ``confirmed`` means final: at least BTC_MIN_CONFIRMATIONS confirmations on Bitcoin, or logged
    in a scanned Ethereum block. Other rows are pending and left out of the bars.
    """

    chain = models.CharField(max_length=3, choices=Chain.choices)
    asset = models.CharField(max_length=8, choices=Asset.choices)
    txid = models.CharField(max_length=80, help_text="Bitcoin txid, or 0x<tx hash>:<log index> for ERC-20.")
    exchange = models.SlugField(max_length=64)
    counterparty = models.SlugField(max_length=64, blank=True)
    exchange_to_exchange = models.BooleanField(default=False)
    inflow = amount_field(default=0)
    outflow = amount_field(default=0)
    internal = amount_field(default=0)
    fee = amount_field(default=0)
    block_height = models.BigIntegerField(null=True, blank=True)
    block_time = models.DateTimeField(null=True, blank=True)
    confirmed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = FlowTxQuerySet.as_manager()

    class Meta:
        verbose_name = "flow transaction"
        ordering = ["-block_time", "txid"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "txid", "exchange", "counterparty"], name="flowtx_unique_key"),
        ]
        indexes = [
            models.Index(fields=["chain", "asset", "confirmed", "block_time"], name="flowtx_series"),
            models.Index(fields=["chain", "block_height"], name="flowtx_height"),
        ]

    def __str__(self) -> str:
        return f"{self.chain}:{self.txid[:16]}… {self.exchange}"


class FlowBar(models.Model):
    """Hourly exchange flows of one asset for one exchange (or ``all``), from final FlowTx rows.

    Definitions as in apps.flows.aggregate; amounts in base units. Hours without any flow of the
    exchange have no bar (read them as zero). ``netflow_z`` is computed against the preceding
    NETFLOW_Z_WINDOW_DAYS of hours; the USD columns use our own hourly close (stablecoins at 1 USD)
    and are null without a price; ``reserve`` is the summed balance of the exchange's wallets.
    """

    class Interval(models.TextChoices):
        H1 = "1h", "1 hour"

    chain = models.CharField(max_length=3, choices=Chain.choices)
    asset = models.CharField(max_length=8, choices=Asset.choices)
    exchange = models.SlugField(max_length=64, help_text='Exchange slug, or "all".')
    interval = models.CharField(max_length=3, choices=Interval.choices, default=Interval.H1)
    bucket_start = models.DateTimeField()
    inflow = amount_field(default=0)
    outflow = amount_field(default=0)
    netflow = amount_field(default=0)
    internal = amount_field(default=0)
    fee = amount_field(default=0)
    inflow_txs = models.PositiveIntegerField(default=0)
    outflow_txs = models.PositiveIntegerField(default=0)
    mean_inflow = models.FloatField(null=True, blank=True, help_text="Base units per inflow transaction.")
    whale_ratio = models.FloatField(null=True, blank=True)
    netflow_z = models.FloatField(null=True, blank=True)
    price_usd = models.FloatField(null=True, blank=True)
    inflow_usd = models.FloatField(null=True, blank=True)
    outflow_usd = models.FloatField(null=True, blank=True)
    netflow_usd = models.FloatField(null=True, blank=True)
    reserve = amount_field(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["chain", "asset", "exchange", "bucket_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["chain", "asset", "exchange", "interval", "bucket_start"], name="flowbar_unique_bucket",
            ),
        ]
        indexes = [
            models.Index(fields=["chain", "asset", "interval", "bucket_start"], name="flowbar_range"),
        ]

    def __str__(self) -> str:
        return f"{self.asset} {self.exchange} {self.interval} {self.bucket_start:%Y-%m-%d %H:%M} UTC"


class ReserveSnapshot(models.Model):
    """Summed confirmed balance of an exchange's labelled wallets (or ``all``), one per hour."""

    chain = models.CharField(max_length=3, choices=Chain.choices)
    asset = models.CharField(max_length=8, choices=Asset.choices)
    exchange = models.SlugField(max_length=64)
    time = models.DateTimeField(help_text="Start of the UTC hour the snapshot stands for.")
    balance = amount_field()
    wallets = models.PositiveIntegerField(default=0, help_text="Wallets with a known balance in the sum.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["chain", "asset", "exchange", "-time"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "asset", "exchange", "time"], name="reservesnapshot_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.asset} reserve of {self.exchange} at {self.time:%Y-%m-%d %H:%M} UTC"


class FlowSample(models.Model):
    """Real blocks loaded from the shipped recording (manage.py load_flow_samples), not polled.

    Their FlowTx rows are real exchange flows, but of seconds of chain history: the flows page names the
    sample wherever its rows show. ``inflows_only``: the recording lacks input addresses and values (a raw
    Bitcoin block), so only inflows could be counted.
    """

    key = models.SlugField(max_length=64, unique=True, help_text="e.g. eth-17173049-17173050, btc-702861.")
    chain = models.CharField(max_length=3, choices=Chain.choices)
    assets = models.CharField(max_length=64, help_text="Comma-separated assets with rows, e.g. USDT,USDC,ETH.")
    description = models.CharField(max_length=120, help_text='e.g. "2 Ethereum blocks".')
    first_height = models.BigIntegerField()
    last_height = models.BigIntegerField()
    start = models.DateTimeField(help_text="Time of the first block (UTC).")
    end = models.DateTimeField(help_text="Time of the last block (UTC).")
    transactions = models.PositiveIntegerField(help_text="Transactions (or token transfers) read from the blocks.")
    flow_rows = models.PositiveIntegerField(help_text="FlowTx rows the blocks produced.")
    inflows_only = models.BooleanField(default=False)
    source = models.CharField(max_length=255, help_text="Where the recording and its licence are described.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-end"]

    def __str__(self) -> str:
        return f"recorded sample {self.key}"

    @property
    def asset_list(self) -> list[str]:
        return [a for a in self.assets.split(",") if a]
