"""Address validation for Bitcoin and Ethereum, with a reason for every rejection (pure, no ORM).

Bitcoin
    Base58Check (P2PKH ``1…`` version 0x00, P2SH ``3…`` version 0x05; testnet 0x6f / 0xc4):
    25 bytes = version + 20-byte hash + 4-byte checksum, the checksum being the first 4 bytes of
    double SHA-256 of the first 21. Segwit (``bc1…``): BIP-173 bech32 for witness version 0
    (P2WPKH 20-byte and P2WSH 32-byte programs), BIP-350 bech32m for versions 1 to 16 (taproot
    ``bc1p…`` is v1 with a 32-byte program). HRP ``bc``, or ``tb`` only when ``testnet=True``.
    Bech32 is normalised to lowercase; Base58 is case-sensitive and kept as given.

Ethereum
    ``0x`` + 40 hex digits. All-lowercase or all-uppercase hex carries no checksum and is accepted;
    mixed case must be a valid EIP-55 checksum (keccak-256 of the lowercase hex). Normalised to
    lowercase ``0x…``; :func:`to_checksum_address` gives the EIP-55 form for display.

Nothing is stripped: the caller decides whether surrounding whitespace is a typo or corruption.
"""

from __future__ import annotations

import hashlib

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

# --- keccak-256 -----------------------------------------------------------------------------------
# Ethereum uses the original Keccak padding (0x01), not FIPS-202 SHA3 (0x06), so hashlib.sha3_256
# gives different digests. Lanes are Python ints; tables are generated from the spec's definitions.

_MASK64 = (1 << 64) - 1
_KECCAK_RATE = 136  # bytes: 1600 - 2 * 256 bits of capacity


def _round_constants() -> tuple[int, ...]:
    out, lfsr = [], 1
    for _ in range(24):
        rc = 0
        for j in range(7):
            if lfsr & 1:
                rc |= 1 << ((1 << j) - 1)
            lfsr = ((lfsr << 1) ^ 0x71) & 0xFF if lfsr & 0x80 else lfsr << 1
        out.append(rc)
    return tuple(out)


def _rho_pi() -> tuple[tuple[int, int, int], ...]:
    """(source lane, destination lane, rotation) for the combined rho and pi steps."""
    offsets = [[0] * 5 for _ in range(5)]
    x, y = 1, 0
    for t in range(24):
        offsets[x][y] = ((t + 1) * (t + 2) // 2) % 64
        x, y = y, (2 * x + 3 * y) % 5
    return tuple((x + 5 * y, y + 5 * ((2 * x + 3 * y) % 5), offsets[x][y]) for x in range(5) for y in range(5))


_RC = _round_constants()
_RHO_PI = _rho_pi()


def _keccak_f1600(a: list[int]) -> None:
    for rc in _RC:
        c = [a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20] for x in range(5)]
        d = [c[(x - 1) % 5] ^ (((c[(x + 1) % 5] << 1) | (c[(x + 1) % 5] >> 63)) & _MASK64) for x in range(5)]
        for i in range(25):
            a[i] ^= d[i % 5]
        b = [0] * 25
        for src, dst, rot in _RHO_PI:
            v = a[src]
            b[dst] = ((v << rot) | (v >> (64 - rot))) & _MASK64 if rot else v
        for y in range(0, 25, 5):
            b0, b1, b2, b3, b4 = b[y : y + 5]
            a[y] = b0 ^ (~b1 & b2)
            a[y + 1] = b1 ^ (~b2 & b3)
            a[y + 2] = b2 ^ (~b3 & b4)
            a[y + 3] = b3 ^ (~b4 & b0)
            a[y + 4] = b4 ^ (~b0 & b1)
        a[0] ^= rc


def keccak256(data: bytes) -> bytes:
    """Keccak-256 as Ethereum uses it (pad 0x01…0x80), 32 bytes."""
    return _sponge256(data, 0x01)


def _sponge256(data: bytes, pad: int) -> bytes:
    """The 256-bit sponge; pad 0x06 gives FIPS-202 SHA3-256, which lets tests check it against hashlib."""
    padded = bytearray(data)
    padded.append(pad)
    padded.extend(b"\x00" * (-len(padded) % _KECCAK_RATE))
    padded[-1] |= 0x80
    state = [0] * 25
    for off in range(0, len(padded), _KECCAK_RATE):
        block = padded[off : off + _KECCAK_RATE]
        for i in range(_KECCAK_RATE // 8):
            state[i] ^= int.from_bytes(block[8 * i : 8 * i + 8], "little")
        _keccak_f1600(state)
    return b"".join(lane.to_bytes(8, "little") for lane in state[:4])


# --- Ethereum -------------------------------------------------------------------------------------

_HEX = frozenset("0123456789abcdefABCDEF")


def to_checksum_address(address: str) -> str:
    """EIP-55 form of a valid address: hex letter uppercased where its keccak nibble is >= 8."""
    body = address[2:].lower()
    digest = keccak256(body.encode("ascii")).hex()
    return "0x" + "".join(ch.upper() if ch.isalpha() and int(digest[i], 16) >= 8 else ch for i, ch in enumerate(body))


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
    if body != body.lower() and body != body.upper() and to_checksum_address(address) != address:
        return None, "bad EIP-55 checksum"
    return "0x" + body.lower(), None


# --- Bitcoin: Base58Check ------------------------------------------------------------------------

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {ch: i for i, ch in enumerate(_B58)}
_B58_VERSIONS = {False: {0x00: "p2pkh", 0x05: "p2sh"}, True: {0x6F: "p2pkh", 0xC4: "p2sh"}}


class _Invalid(ValueError):
    pass


def _b58decode(text: str) -> bytes:
    num = 0
    for ch in text:
        digit = _B58_INDEX.get(ch)
        if digit is None:
            raise _Invalid(f"invalid base58 character {ch!r}")
        num = num * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    return b"\x00" * zeros + (num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b"")


def _decode_base58check(address: str, testnet: bool) -> str:
    raw = _b58decode(address)
    if len(raw) != 25:
        raise _Invalid(f"base58 payload is {len(raw)} bytes, expected 25")
    payload, checksum = raw[:21], raw[21:]
    if hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != checksum:
        raise _Invalid("bad base58 checksum")
    kind = _B58_VERSIONS[testnet].get(payload[0])
    if kind is None:
        raise _Invalid(f"unknown version byte 0x{payload[0]:02x} for {'testnet' if testnet else 'mainnet'}")
    return kind


# --- Bitcoin: bech32 / bech32m (BIP-173, BIP-350) ----------------------------------------------

_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_INDEX = {ch: i for i, ch in enumerate(_BECH32_CHARSET)}
_BECH32_CONST = 1
_BECH32M_CONST = 0x2BC830A3
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GEN[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _bech32_decode(text: str) -> tuple[str, list[int], int]:
    """(hrp, 5-bit data without checksum, checksum constant)."""
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise _Invalid("character outside printable ASCII")
    if text.lower() != text and text.upper() != text:
        raise _Invalid("mixed case bech32")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1:
        raise _Invalid("missing bech32 separator or empty HRP")
    if pos + 7 > len(text):
        raise _Invalid("bech32 data part too short")
    hrp, data_part = text[:pos], text[pos + 1 :]
    data = []
    for ch in data_part:
        value = _BECH32_INDEX.get(ch)
        if value is None:
            raise _Invalid(f"invalid bech32 character {ch!r}")
        data.append(value)
    const = _polymod(_hrp_expand(hrp) + data)
    if const not in (_BECH32_CONST, _BECH32M_CONST):
        raise _Invalid("bad bech32 checksum")
    return hrp, data[:-6], const


def _convert_5_to_8(data: list[int]) -> bytes:
    acc = bits = 0
    out = bytearray()
    for value in data:
        acc = (acc << 5) | value
        bits += 5
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    # BIP-173: at most 4 bits of padding, all zero.
    if bits >= 5 or acc & ((1 << bits) - 1):
        raise _Invalid("invalid bech32 padding")
    return bytes(out)


def _decode_segwit(address: str, testnet: bool) -> str:
    hrp, data, const = _bech32_decode(address)
    expected = "tb" if testnet else "bc"
    if hrp != expected:
        raise _Invalid(f"wrong HRP {hrp!r} (expected {expected!r})")
    if not data:
        raise _Invalid("missing witness version")
    version = data[0]
    if version > 16:
        raise _Invalid(f"invalid witness version {version}")
    program = _convert_5_to_8(data[1:])
    if not 2 <= len(program) <= 40:
        raise _Invalid(f"witness program of {len(program)} bytes (must be 2 to 40)")
    if version == 0:
        if const != _BECH32_CONST:
            raise _Invalid("witness v0 must use bech32, not bech32m")
        if len(program) == 20:
            return "p2wpkh"
        if len(program) == 32:
            return "p2wsh"
        raise _Invalid(f"witness v0 program of {len(program)} bytes (must be 20 or 32)")
    if const != _BECH32M_CONST:
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
