"""Build the shipped exchange-wallet label files from the public label sources (reproducible).

    python -m apps.flows.build_labels SRC_DIR OUT_DIR

SRC_DIR is the ``exchange-address-labels`` snapshot (see its SOURCE.txt):

- ``btc_exchange_addresses_defillama.csv``: DefiLlama's CEX proof-of-reserves address book.
  Label ``hot``/``cold`` where the source notes it, otherwise ``reserve``.
- ``etherscan-labels-brianleect/<label>.csv`` and ``eth-labels-dawsbot_exchange_all.csv``:
  Etherscan name tags. The exchange slug comes from the tag (``"Binance 14"`` -> binance,
  ``"Crypto.com: Deployer"`` -> crypto-com); the label is ``cold``/``hot`` from the Etherscan
  cold-wallet / hot-wallet label or the tag's words, ``deposit`` for deposit addresses, else
  ``unknown``.

OUT_DIR receives ``btc_exchange_wallets.csv`` and ``eth_exchange_wallets.csv`` with columns
chain,address,exchange,label,source, sorted by exchange then address. Every address goes through
:mod:`apps.flows.addresses`; rejects (invalid address, conflicting exchanges) and exclusions
(entries that are not exchange wallets: token contracts, stablecoin issuers, wallets, ...) are
printed to stdout with their reasons and never shipped. A JSON summary is the last line.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from apps.flows.addresses import btc_address_kind, validate_address

COLUMNS = ("chain", "address", "exchange", "label", "source")
LABELS = ("hot", "cold", "deposit", "reserve", "unknown")
BTC_FILE = "btc_exchange_addresses_defillama.csv"
ETH_BRIANLEECT_DIR = "etherscan-labels-brianleect"
ETH_DAWSBOT_FILE = "eth-labels-dawsbot_exchange_all.csv"

# Brand renames and spellings that must land on one slug (Etherscan's own label slugs where they exist).
ALIASES = {"okex": "okx", "mexc-com": "mexc", "kucoin-contract": "kucoin"}

# Entities in the exchange / hot-wallet / cold-wallet labels that are not exchanges: money moving
# to them is not exchange inflow.
NOT_EXCHANGES = {
    "tether": "stablecoin issuer, not an exchange",
    "euro-tether": "stablecoin issuer, not an exchange",
    "tether-gold": "stablecoin issuer, not an exchange",
    "eurt": "stablecoin issuer, not an exchange",
    "wintermute": "market maker, not an exchange",
    "bitsler-com": "gambling site, not an exchange",
    "freewallet": "wallet provider, not an exchange",
    "portto": "wallet provider, not an exchange",
    "xwallet": "wallet provider, not an exchange",
    "blockfolio": "portfolio app, not an exchange",
    "binance-charity": "charity, not an exchange",
}

# Tags naming contracts rather than wallets holding customer funds.
NOT_WALLET_TAGS = (
    (re.compile(r"\btokens?\b(?! wallet)|stablecoin|^binance usd$|:undefined$", re.I), "token contract, not a wallet"),
    (re.compile(r"\bnft\b|cdcnft", re.I), "NFT contract, not a wallet"),
    (re.compile(r"\bdex\b", re.I), "DEX contract, not an exchange wallet"),
    (re.compile(r"mining pool|^binance pool$", re.I), "mining pool, not an exchange wallet"),
)

_TRAILING = re.compile(r"(\s+(\d+|hot wallet|cold wallet|warm wallet|exchange|ltd))+$", re.I)


def exchange_slug(tag: str) -> str:
    """Exchange slug from an Etherscan name tag: the entity before ':', without numbering or suffixes.

    'Binance 14' -> 'binance', 'Crypto.com: Deployer' -> 'crypto-com', 'Bitkub Hot Wallet 1' -> 'bitkub',
    'OKEx 2' -> 'okx', 'Panda.Exchange 1: Hot Wallet' -> 'panda-exchange', 'Binance US' -> 'binance-us'.
    """
    entity = tag.split(":", 1)[0].strip()
    entity = _TRAILING.sub("", entity)
    slug = re.sub(r"[^a-z0-9]+", "-", entity.lower()).strip("-")
    return ALIASES.get(slug, slug)


def wallet_label(tags: list[str], etherscan_labels: set[str]) -> str:
    """cold > hot > deposit > unknown, from the Etherscan label and the words of any tag."""
    text = " | ".join(tags).lower()
    if "cold-wallet" in etherscan_labels or "cold wallet" in text:
        return "cold"
    if "hot-wallet" in etherscan_labels or "hot wallet" in text or "warm wallet" in text:
        return "hot"
    # "Deposit Funder"/"Supplier" wallets pay gas to deposit addresses; they are not deposit addresses.
    if re.search(r"\bdeposit\b(?! (funder|supplier))", text):
        return "deposit"
    return "unknown"


@dataclass
class Built:
    rows: list[dict] = field(default_factory=list)
    rejected: list[tuple[str, str, str, str]] = field(default_factory=list)  # chain, address, reason, source
    excluded: list[tuple[str, str, str, str]] = field(default_factory=list)


def build_btc(src: Path) -> Built:
    out = Built()
    grouped: dict[str, list[dict]] = {}
    with open(src / BTC_FILE, newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            source = f"DefiLlama-Adapters:{rec['source_path']}@{rec['source_commit'][:12]}"
            address, reason = validate_address("btc", rec["address"].strip())
            if reason is None and rec.get("address_type") and btc_address_kind(address) != rec["address_type"]:
                reason = f"source says {rec['address_type']}, address is {btc_address_kind(address)}"
            exchange = rec["exchange"].strip().lower()
            exchange = ALIASES.get(exchange, exchange)
            if reason is None and not exchange:
                reason = "no exchange"
            if reason is not None:
                out.rejected.append(("btc", rec["address"], reason, source))
                continue
            note = rec.get("note", "").lower()
            label = "cold" if "cold" in note else "hot" if "hot" in note else "reserve"
            grouped.setdefault(address, []).append(
                {"chain": "btc", "address": address, "exchange": exchange, "label": label, "source": source})
    for address, rows in grouped.items():
        exchanges = sorted({r["exchange"] for r in rows})
        if len(exchanges) > 1:
            out.rejected.append(("btc", address, f"listed for different exchanges: {', '.join(exchanges)}",
                                 ";".join(r["source"] for r in rows)))
        else:
            out.rows.append({**rows[0], "source": ";".join(dict.fromkeys(r["source"] for r in rows))})
    return out


def _eth_sources(src: Path):
    """(raw address, name tag, etherscan label, source) from both ETH sources; brianleect first (newer scrape)."""
    for path in sorted((src / ETH_BRIANLEECT_DIR).glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            for rec in csv.DictReader(fh):
                yield rec["Address"], rec["Name Tag"].strip(), path.stem, f"etherscan-labels:{path.stem}"
    with open(src / ETH_DAWSBOT_FILE, newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            yield rec["address"], rec["nameTag"].strip(), "exchange", "eth-labels:exchange"


def _exclusion(tag: str) -> str | None:
    if not tag:
        return "no name tag, exchange unknown"
    for pattern, reason in NOT_WALLET_TAGS:
        if pattern.search(tag):
            return reason
    return NOT_EXCHANGES.get(exchange_slug(tag))


def build_eth(src: Path) -> Built:
    out = Built()
    grouped: dict[str, dict] = {}
    for raw, tag, etherscan_label, source in _eth_sources(src):
        address, reason = validate_address("eth", raw.strip())
        if reason is not None:
            out.rejected.append(("eth", raw, reason, source))
            continue
        entry = grouped.setdefault(address, {"tags": [], "labels": set(), "sources": []})
        if tag and tag not in entry["tags"]:
            entry["tags"].append(tag)
        entry["labels"].add(etherscan_label)
        if source not in entry["sources"]:
            entry["sources"].append(source)

    for address, entry in grouped.items():
        source = ";".join(entry["sources"])
        tags = entry["tags"]
        # One tag that is not an exchange wallet condemns the address: tags are of the same entity.
        excluded = [reason for reason in map(_exclusion, tags) if reason] if tags else [_exclusion("")]
        if excluded:
            out.excluded.append(("eth", address, f"{excluded[0]} ({' / '.join(tags) or 'no tag'})", source))
            continue
        slugs = sorted({exchange_slug(t) for t in tags})
        if len(slugs) > 1:
            out.rejected.append(("eth", address, f"tags name different exchanges: {', '.join(slugs)}", source))
            continue
        out.rows.append({"chain": "eth", "address": address, "exchange": slugs[0],
                         "label": wallet_label(tags, entry["labels"]), "source": source})
    return out


def write_rows(path: Path, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: (r["exchange"], r["address"]))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m apps.flows.build_labels SRC_DIR OUT_DIR", file=sys.stderr)
        return 2
    src, dst = Path(argv[0]), Path(argv[1])
    dst.mkdir(parents=True, exist_ok=True)
    summary = {}
    for chain, built in (("btc", build_btc(src)), ("eth", build_eth(src))):
        for kind, items in (("REJECT", built.rejected), ("EXCLUDE", built.excluded)):
            for _, address, reason, source in items:
                print(f"{kind}\t{chain}\t{address}\t{reason}\t{source}")
        write_rows(dst / f"{chain}_exchange_wallets.csv", built.rows)
        summary[chain] = {
            "shipped": len(built.rows),
            "rejected": len(built.rejected),
            "excluded": len(built.excluded),
            "exchanges": len({r["exchange"] for r in built.rows}),
            "labels": dict(sorted(Counter(r["label"] for r in built.rows).items())),
        }
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
