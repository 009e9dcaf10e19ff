import hashlib

import pytest

from apps.flows.addresses import (
    btc_address_kind,
    keccak256,
    to_checksum_address,
    validate_address,
)

# BIP-350 valid segwit addresses (which supersede BIP-173's for v1+), with the kind we report.
VALID_SEGWIT = [
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", False, "p2wpkh"),
    ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", True, "p2wsh"),
    ("bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y", False, "witness_v1"),
    ("BC1SW50QGDZ25J", False, "witness_v16"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", False, "witness_v2"),
    ("tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy", True, "p2wsh"),
    ("tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c", True, "p2tr"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", False, "p2tr"),
]

# BIP-173 and BIP-350 invalid addresses, each with the reason we give.
INVALID_SEGWIT = [
    ("tc1qw508d6qejxtdg4y5r3zarvary0c5xw7kg3g4ty", False, "wrong HRP 'tc'"),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", False, "bad bech32 checksum"),
    ("BC13W508D6QEJXTDG4Y5R3ZARVARY0C5XW7KN40WF2", False, "invalid witness version 17"),
    ("bc1rw5uspcuh", False, "witness program of 1 bytes"),
    ("bc10w508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kw5rljs90", False,
     "witness program of 41 bytes"),
    ("BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P", False, "witness v0 program of 16 bytes"),
    ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sL5k7", True, "mixed case"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvqyzf3du", False, "invalid bech32 padding"),
    ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3pjxtptv", True, "invalid bech32 padding"),
    ("bc1gmk9yu", False, "missing witness version"),  # empty data section
    ("tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut", False, "wrong HRP 'tc'"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd", False, "must use bech32m"),
    ("tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf", True, "must use bech32m"),
    ("BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL", False, "must use bech32m"),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh", False, "v0 must use bech32, not bech32m"),
    ("tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47", True, "v0 must use bech32, not bech32m"),
    ("bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4", False, "invalid bech32 character 'o'"),
    ("BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R", False, "invalid witness version 17"),
    ("bc1pw5dgrnzv", False, "witness program of 1 bytes"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav", False,
     "witness program of 41 bytes"),
    ("tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq", True, "mixed case"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf", False, "invalid bech32 padding"),
    ("tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j", True, "invalid bech32 padding"),
]

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58check(payload: bytes) -> str:
    raw = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    num, out = int.from_bytes(raw, "big"), ""
    while num:
        num, rem = divmod(num, 58)
        out = B58[rem] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\x00"))) + out


@pytest.mark.parametrize(("address", "testnet", "kind"), VALID_SEGWIT)
def test_bip350_valid_addresses_pass_and_are_lowercased(address, testnet, kind):
    assert validate_address("btc", address, testnet=testnet) == (address.lower(), None)
    assert btc_address_kind(address, testnet=testnet) == kind


@pytest.mark.parametrize(("address", "testnet", "reason"), INVALID_SEGWIT)
def test_bip173_and_bip350_invalid_addresses_fail_with_their_reason(address, testnet, reason):
    normalised, why = validate_address("btc", address, testnet=testnet)
    assert normalised is None
    assert reason in why


def test_testnet_addresses_need_testnet_and_mainnet_ones_fail_on_testnet():
    tb = "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"
    assert validate_address("btc", tb) == (None, "wrong HRP 'tb' (expected 'bc')")
    bc = "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
    assert validate_address("btc", bc, testnet=True) == (None, "wrong HRP 'bc' (expected 'tb')")


@pytest.mark.parametrize(("address", "kind"), [
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "p2pkh"),  # the genesis block's coinbase address
    ("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "p2pkh"),
    ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "p2sh"),
    ("1stAprEZapjCYGUACUcXohQqSHF9MU5Kj", "p2pkh"),  # 33 characters: from the mempool sample
])
def test_base58check_valid_addresses_keep_their_case(address, kind):
    assert validate_address("bitcoin", address) == (address, None)
    assert btc_address_kind(address) == kind


@pytest.mark.parametrize(("address", "reason"), [
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", "bad base58 checksum"),
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfN0", "invalid base58 character '0'"),
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNl", "invalid base58 character 'l'"),
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7Div", "base58 payload is"),
    ("", "empty"),
    (" 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "contains whitespace"),
    ("1" * 91, "longer than 90 characters"),
])
def test_base58check_invalid_addresses_fail_with_their_reason(address, reason):
    normalised, why = validate_address("btc", address)
    assert normalised is None
    assert reason in why


def test_version_bytes_select_network_and_kind():
    h160 = bytes(range(20))
    assert btc_address_kind(b58check(b"\x00" + h160)) == "p2pkh"
    assert btc_address_kind(b58check(b"\x05" + h160)) == "p2sh"
    testnet_p2pkh = b58check(b"\x6f" + h160)
    assert validate_address("btc", testnet_p2pkh) == (None, "unknown version byte 0x6f for mainnet")
    assert btc_address_kind(testnet_p2pkh, testnet=True) == "p2pkh"
    assert btc_address_kind(b58check(b"\xc4" + h160), testnet=True) == "p2sh"
    assert validate_address("btc", b58check(b"\x30" + h160))[1] == "unknown version byte 0x30 for mainnet"


def test_keccak256_known_vectors():
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"The quick brown fox jumps over the lazy dog").hex() == (
        "4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15")
    assert keccak256(b"Transfer(address,address,uint256)").hex() == (
        "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")
    # hashlib's sha3_256 is FIPS-202 SHA3 (pad 0x06), a different function.
    assert hashlib.sha3_256(b"").digest() != keccak256(b"")


EIP55 = [
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("address", EIP55)
def test_eip55_examples_pass_are_lowercased_and_round_trip(address):
    assert validate_address("eth", address) == (address.lower(), None)
    assert to_checksum_address(address.lower()) == address


@pytest.mark.parametrize("address", EIP55)
def test_eip55_one_flipped_letter_case_fails(address):
    i = next(i for i, ch in enumerate(address[2:], 2) if ch.isalpha())
    flipped = address[:i] + address[i].swapcase() + address[i + 1 :]
    assert validate_address("ethereum", flipped) == (None, "bad EIP-55 checksum")


@pytest.mark.parametrize(("address", "reason"), [
    ("0x52908400098527886E0F7030069857D2E4169EE7", None),  # all uppercase: no checksum
    ("0xde709f2102306220921060314715629080e2fb77", None),  # all lowercase: no checksum
    ("52908400098527886E0F7030069857D2E4169EE7", "missing 0x prefix"),
    ("0X52908400098527886E0F7030069857D2E4169EE7", "missing 0x prefix"),
    ("0x52908400098527886E0F7030069857D2E4169E", "expected 40 hex digits after 0x, got 38"),
    ("0xde709f2102306220921060314715629080e2fbzz", "non-hex character"),
    (None, "not a string"),
])
def test_eth_address_forms(address, reason):
    normalised, why = validate_address("eth", address)
    assert why == reason
    if reason is None:
        assert normalised == address.lower()


def test_unknown_chain():
    assert validate_address("doge", "D8...") == (None, "unknown chain 'doge'")
