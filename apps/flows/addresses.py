"""Address validation for Bitcoin and Ethereum, with a reason for every rejection (pure, no ORM).

The codecs are maintained libraries: ``base58`` (Base58Check), ``bech32m`` (BIP-173 bech32 and
BIP-350 bech32m, Pieter Wuille's reference code) and ``eth-utils``/``eth-hash`` with the
pycryptodome backend (Keccak-256, EIP-55). This module adds the rules on top and words the
reasons a person reads in the import report.

Bitcoin
    Base58Check (P2PKH ``1…`` version 0x00, P2SH ``3…`` version 0x05; testnet 0x6f / 0xc4):
    25 bytes = version + 20-byte hash + 4-byte checksum. Segwit (``bc1…``): bech32 for witness
    version 0 (P2WPKH 20-byte and P2WSH 32-byte programs), bech32m for versions 1 to 16 (taproot
    ``bc1p…`` is v1 with a 32-byte program). HRP ``bc``, or ``tb`` only when ``testnet=True``.
    Bech32 is normalised to lowercase; Base58 is case-sensitive and kept as given.

Ethereum
    ``0x`` + 40 hex digits. All-lowercase or all-uppercase hex carries no checksum and is accepted;
    mixed case must be a valid EIP-55 checksum. Normalised to lowercase ``0x…``;
    :func:`to_checksum_address` gives the EIP-55 form for display.

Nothing is stripped: the caller decides whether surrounding whitespace is a typo or corruption.
"""

from __future__ import annotations

import base58
from bech32m import codecs as bech32
from eth_hash.auto import keccak as keccak256
from eth_utils import is_checksum_address, to_checksum_address

__all__ = [
    "btc_address_kind",
    "keccak256",
    "to_checksum_address",
    "validate_address",
    "validate_btc_address",
    "validate_eth_address",
]

MAX_ADDRESS_LENGTH = 90  # the longest bech32 string; also bounds the Base58 big-int work
CHAINS = {"btc": "btc", "bitcoin": "btc", "eth": "eth", "ethereum": "eth"}


class _Invalid(ValueError):
    pass


# --- Ethereum -------------------------------------------------------------------------------------

_HEX = frozenset("0123456789abcdefABCDEF")


def validate_eth_address(address: object) -> tuple[str, None] | tuple[None, str]:
    """(lowercase address, None) or (None, reason)."""
    if not isinstance(address, str):
        return None, "not a string"
    if not address.startswith("0x"):
        return None, "missing 0x prefix"
    body = address[2:]
    if len(body) != 40:
        return None, f"expected 40 hex digits after 0x, got {len(body)}"
    if not _HEX.issuperset(body):
        return None, "non-hex character"
    if body != body.lower() and body != body.upper() and not is_checksum_address(address):
        return None, "bad EIP-55 checksum"
    return "0x" + body.lower(), None


# --- Bitcoin: Base58Check ------------------------------------------------------------------------

_B58_ALPHABET = frozenset(base58.BITCOIN_ALPHABET.decode("ascii"))
_B58_VERSIONS = {False: {0x00: "p2pkh", 0x05: "p2sh"}, True: {0x6F: "p2pkh", 0xC4: "p2sh"}}


def _decode_base58check(address: str, testnet: bool) -> str:
    bad = next((ch for ch in address if ch not in _B58_ALPHABET), None)
    if bad is not None:
        raise _Invalid(f"invalid base58 character {bad!r}")
    raw = base58.b58decode(address)
    if len(raw) != 25:
        raise _Invalid(f"base58 payload is {len(raw)} bytes, expected 25")
    try:
        payload = base58.b58decode_check(address)
    except ValueError:
        raise _Invalid("bad base58 checksum") from None
    kind = _B58_VERSIONS[testnet].get(payload[0])
    if kind is None:
        raise _Invalid(f"unknown version byte 0x{payload[0]:02x} for {'testnet' if testnet else 'mainnet'}")
    return kind


# --- Bitcoin: bech32 / bech32m (BIP-173, BIP-350) ----------------------------------------------

_BECH32_CHARSET = frozenset(bech32.CHARSET)


def _bech32_decode(text: str) -> tuple[str, bytes, bech32.Encoding]:
    """(hrp, 5-bit data without checksum, encoding); the reason first, then the library's verdict."""
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise _Invalid("character outside printable ASCII")
    if text.lower() != text and text.upper() != text:
        raise _Invalid("mixed case bech32")
    lower = text.lower()
    pos = lower.rfind("1")
    if pos < 1:
        raise _Invalid("missing bech32 separator or empty HRP")
    if pos + 7 > len(lower):
        raise _Invalid("bech32 data part too short")
    bad = next((ch for ch in lower[pos + 1:] if ch not in _BECH32_CHARSET), None)
    if bad is not None:
        raise _Invalid(f"invalid bech32 character {bad!r}")
    try:
        hrp, data, encoding = bech32.bech32_decode(lower)
    except bech32.DecodeError:
        raise _Invalid("bad bech32 checksum") from None  # every other cause was ruled out above
    return hrp, bytes(data), encoding


def _decode_segwit(address: str, testnet: bool) -> str:
    hrp, data, encoding = _bech32_decode(address)
    expected = "tb" if testnet else "bc"
    if hrp != expected:
        raise _Invalid(f"wrong HRP {hrp!r} (expected {expected!r})")
    if not data:
        raise _Invalid("missing witness version")
    version = data[0]
    if version > 16:
        raise _Invalid(f"invalid witness version {version}")
    try:
        program = bech32.convertbits(data[1:], 5, 8, False)
    except bech32.DecodeError:
        raise _Invalid("invalid bech32 padding") from None  # BIP-173: at most 4 bits, all zero
    if not 2 <= len(program) <= 40:
        raise _Invalid(f"witness program of {len(program)} bytes (must be 2 to 40)")
    if version == 0:
        if encoding != bech32.Encoding.BECH32:
            raise _Invalid("witness v0 must use bech32, not bech32m")
        if len(program) in (20, 32):
            return "p2wpkh" if len(program) == 20 else "p2wsh"
        raise _Invalid(f"witness v0 program of {len(program)} bytes (must be 20 or 32)")
    if encoding != bech32.Encoding.BECH32M:
        raise _Invalid(f"witness v{version} must use bech32m, not bech32")
    return "p2tr" if version == 1 and len(program) == 32 else f"witness_v{version}"


# --- Bitcoin: dispatch ----------------------------------------------------------------------------


def _btc_kind(address: object, testnet: bool) -> str:
    if not isinstance(address, str):
        raise _Invalid("not a string")
    if not address:
        raise _Invalid("empty")
    if len(address) > MAX_ADDRESS_LENGTH:
        raise _Invalid(f"longer than {MAX_ADDRESS_LENGTH} characters")
    if any(ch.isspace() for ch in address):
        raise _Invalid("contains whitespace")
    if address[:3].lower() in ("bc1", "tb1"):
        return _decode_segwit(address, testnet)
    try:
        return _decode_base58check(address, testnet)
    except _Invalid as base58_error:
        # A bech32 string with an unexpected HRP says more about itself than "bad base58 character".
        try:
            hrp, _, _ = _bech32_decode(address)
        except _Invalid:
            raise base58_error from None
        raise _Invalid(f"wrong HRP {hrp!r} (expected {'tb' if testnet else 'bc'!r})") from None


def btc_address_kind(address: str, *, testnet: bool = False) -> str | None:
    """'p2pkh', 'p2sh', 'p2wpkh', 'p2wsh', 'p2tr' or 'witness_vN'; None when invalid."""
    try:
        return _btc_kind(address, testnet)
    except _Invalid:
        return None


def validate_btc_address(address: object, *, testnet: bool = False) -> tuple[str, None] | tuple[None, str]:
    """(normalised address, None) or (None, reason); bech32 is lowercased, Base58 kept as is."""
    try:
        kind = _btc_kind(address, testnet)
    except _Invalid as exc:
        return None, str(exc)
    assert isinstance(address, str)
    return (address if kind in ("p2pkh", "p2sh") else address.lower()), None


def validate_address(chain: str, address: str, *, testnet: bool = False) -> tuple[str, None] | tuple[None, str]:
    """Validate an address of ``chain`` ('btc'/'bitcoin' or 'eth'/'ethereum').

    Returns (normalised address, None) or (None, reason). ``testnet`` switches Bitcoin to the
    ``tb`` HRP and testnet version bytes; Ethereum addresses are the same on every network.
    """
    key = CHAINS.get(chain.lower()) if isinstance(chain, str) else None
    if key is None:
        return None, f"unknown chain {chain!r}"
    if key == "btc":
        return validate_btc_address(address, testnet=testnet)
    return validate_eth_address(address)
