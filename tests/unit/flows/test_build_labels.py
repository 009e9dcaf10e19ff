import csv
import json
import re
import shutil

import pytest

from apps.flows import build_labels
from apps.flows.addresses import validate_address
from apps.flows.build_labels import LABELS, exchange_slug, wallet_label

from .builders import LABEL_SOURCES, LABELS_DIR


def run(src, dst, capsys) -> tuple[dict, list[str]]:
    assert build_labels.main([str(src), str(dst)]) == 0
    lines = capsys.readouterr().out.splitlines()
    return json.loads(lines[-1]), lines[:-1]


def rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("labels")
    assert build_labels.main([str(LABEL_SOURCES), str(out)]) == 0
    return out


def test_build_reproduces_the_shipped_files_byte_for_byte(tmp_path, capsys):
    summary, lines = run(LABEL_SOURCES, tmp_path, capsys)
    for name in ("btc_exchange_wallets.csv", "eth_exchange_wallets.csv"):
        assert (tmp_path / name).read_bytes() == (LABELS_DIR / name).read_bytes()
    assert summary["btc"] == {"shipped": 408, "rejected": 0, "excluded": 0, "exchanges": 5,
                              "labels": {"cold": 2, "hot": 1, "reserve": 405}}
    assert summary["eth"]["shipped"] == 527
    assert summary["eth"]["rejected"] == 0
    assert summary["eth"]["excluded"] == 49
    assert all(line.startswith("EXCLUDE\teth\t0x") for line in lines)


@pytest.mark.parametrize("chain", ["btc", "eth"])
def test_every_shipped_row_is_valid_normalised_unique_and_well_formed(chain):
    shipped = rows(LABELS_DIR / f"{chain}_exchange_wallets.csv")
    assert list(shipped[0]) == ["chain", "address", "exchange", "label", "source"]
    addresses = [r["address"] for r in shipped]
    assert len(addresses) == len(set(addresses))
    for r in shipped:
        assert r["chain"] == chain
        assert validate_address(chain, r["address"]) == (r["address"], None)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", r["exchange"]), r
        assert r["label"] in LABELS
        assert r["source"]


def test_eth_shipped_plus_excluded_is_exactly_the_576_source_addresses(capsys, tmp_path):
    _, lines = run(LABEL_SOURCES, tmp_path, capsys)
    excluded = {line.split("\t")[2] for line in lines}
    shipped = {r["address"] for r in rows(tmp_path / "eth_exchange_wallets.csv")}
    merged = {r["address"] for r in rows(LABEL_SOURCES / "eth_exchange_addresses_merged.csv")}
    assert len(merged) == 576
    assert shipped | excluded == merged
    assert not shipped & excluded


def test_btc_covers_the_five_reserve_books(built):
    counts = {}
    for r in rows(built / "btc_exchange_wallets.csv"):
        counts[r["exchange"]] = counts.get(r["exchange"], 0) + 1
    assert counts == {"binance": 37, "okx": 185, "coinbase": 169, "kraken": 14, "bitfinex": 3}


def test_known_rows(built):
    btc = {r["address"]: r for r in rows(built / "btc_exchange_wallets.csv")}
    assert btc["1Kr6QSydW9bFQG1mXiPNNu6WpJGmUa9i1g"]["label"] == "hot"  # Bitfinex, noted in the source
    assert btc["3JZq4atUahhuA9rLhXLMhhTo133J9rF97j"]["label"] == "cold"
    eth = {r["address"]: r for r in rows(built / "eth_exchange_wallets.csv")}
    assert eth["0xbe0eb53f46cd790cd13851d5eff43d12404d33e8"]["exchange"] == "binance"  # Binance 7
    assert eth["0xbe0eb53f46cd790cd13851d5eff43d12404d33e8"]["label"] == "cold"
    assert eth["0x6cc5f688a315f3dc28a7781717a9a798a59fda7b"]["exchange"] == "okx"  # tagged both OKX and OKEx
    assert eth["0x46340b20830761efd32832a74d7169b29feb9758"]["exchange"] == "crypto-com"
    assert eth["0xd2276af80582cac230edc4c42e9a9c096f3c09aa"]["label"] == "deposit"  # Coinbase: Deposit 1
    # Token contracts and non-exchanges are never shipped: the USDT contract, Tether's treasury.
    assert "0xdac17f958d2ee523a2206206994597c13d831ec7" not in eth
    assert "0x5754284f345afc66a98fbb0a0afe71e0f007b949" not in eth


def test_invalid_and_conflicting_addresses_are_rejected_with_reasons_and_not_shipped(tmp_path, capsys):
    src = tmp_path / "src"
    shutil.copytree(LABEL_SOURCES, src)
    for path in [src / "btc_exchange_addresses_defillama.csv", src / "eth-labels-dawsbot_exchange_all.csv",
                 *src.glob("*/*.csv")]:
        path.chmod(0o644)
    commit = "0" * 40
    with open(src / "btc_exchange_addresses_defillama.csv", "a", encoding="utf-8") as fh:
        fh.write(f"1PJiGp2yDLvUgqeBsuZVCBADArNsk6XEix,binance,p2pkh,,x.js,{commit}\n")  # checksum broken
        fh.write(f"1PJiGp2yDLvUgqeBsuZVCBADArNsk6XEiw,kraken,p2pkh,,x.js,{commit}\n")  # already binance's
    with open(src / "eth-labels-dawsbot_exchange_all.csv", "a", encoding="utf-8") as fh:
        fh.write("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD,Foo Exchange\n")  # EIP-55 broken
        fh.write("0x3f5ce5fbfe3e9af3971dd833d26ba9b5c936f0be,Kraken 99\n")  # Binance's, per etherscan
    summary, lines = run(src, tmp_path / "out", capsys)
    rejects = [line.split("\t") for line in lines if line.startswith("REJECT")]
    reasons = {(chain, address): reason for _, chain, address, reason, _ in rejects}
    assert reasons == {
        ("btc", "1PJiGp2yDLvUgqeBsuZVCBADArNsk6XEix"): "bad base58 checksum",
        ("btc", "1PJiGp2yDLvUgqeBsuZVCBADArNsk6XEiw"): "listed for different exchanges: binance, kraken",
        ("eth", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"): "bad EIP-55 checksum",
        ("eth", "0x3f5ce5fbfe3e9af3971dd833d26ba9b5c936f0be"): "tags name different exchanges: binance, kraken",
    }
    assert summary["btc"]["shipped"] == 407 and summary["eth"]["shipped"] == 526
    shipped = {r["address"] for r in rows(tmp_path / "out" / "btc_exchange_wallets.csv")}
    assert "1PJiGp2yDLvUgqeBsuZVCBADArNsk6XEiw" not in shipped


@pytest.mark.parametrize(("tag", "slug"), [
    ("Binance 14", "binance"),
    ("Binance: Deposit 1", "binance"),
    ("Crypto.com: Deployer", "crypto-com"),
    ("Bitkub Hot Wallet 1", "bitkub"),
    ("OKEx 2", "okx"),
    ("Panda.Exchange 1: Hot Wallet", "panda-exchange"),
    ("Artis Turba Exchange 1", "artis-turba"),
    ("Binance US", "binance-us"),
    ("MEXC: Mexc.com", "mexc"),
    ("Mexc.com 3", "mexc"),
])
def test_exchange_slug(tag, slug):
    assert exchange_slug(tag) == slug


def test_wallet_label_priority():
    assert wallet_label(["Binance 7"], {"binance", "cold-wallet"}) == "cold"
    assert wallet_label(["Kraken: Hot Wallet"], {"kraken"}) == "hot"
    assert wallet_label(["Huobi: Deposit"], {"huobi"}) == "deposit"
    assert wallet_label(["Huobi: Deposit Funder"], {"huobi"}) == "unknown"
    assert wallet_label(["Huobi 30"], {"huobi"}) == "unknown"
