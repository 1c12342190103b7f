"""Address checking and EIP-55 checksumming, fast enough for the log hot path."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from Crypto.Hash import keccak

from ogpu._errors import InvalidAddressError

__all__ = ["checksum_address", "normalize_address"]

_HEX40 = re.compile(r"^0[xX][0-9a-fA-F]{40}$")

# Maps each keccak hex digit to 0x00 (keep the letter's case) or 0xFF (upper-case
# it), so the whole choice is made by bytes.translate and integer masks in C
# instead of a 40-step Python loop.
_MASK_TABLE = bytes(0xFF if chr(i) in "89abcdef" else 0 for i in range(256))


_KECCAK_EMPTY = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")


def _public_keccak256(data: bytes) -> bytes:
    digest: bytes = keccak.new(digest_bits=256, data=data).digest()
    return digest


def _oneshot_keccak256() -> Callable[[bytes], bytes] | None:
    """pycryptodome's one-call Keccak-256, where the installed version has one.

    ``keccak.new()`` spends most of its ~10 us building and freeing a hash
    object through ctypes; the library's one-shot entry point (the one its
    ``SHA3_256.digest`` uses) hashes in a single call, about 2 us, and an
    uncached address is most of what decoding a log costs. It is not public
    API, so it is used only when present and when it reproduces the known
    Keccak-256 of b"" and ``keccak.new()`` on an address; otherwise None.
    """
    try:
        from Crypto.Hash.keccak import _raw_keccak_lib
        from Crypto.Util._raw_api import c_size_t, c_ubyte, c_uint8_ptr, create_string_buffer, get_raw_buffer

        oneshot = _raw_keccak_lib.keccak_oneshot
    except (ImportError, AttributeError):
        return None
    # Keccak-256: capacity 64 bytes, 24 rounds, padding byte 0x01 (SHA-3 uses 0x06).
    out_len, capacity, rounds, padding = c_size_t(32), c_size_t(64), c_ubyte(24), c_ubyte(0x01)

    def keccak256(data: bytes) -> bytes:
        out = create_string_buffer(32)
        if oneshot(c_uint8_ptr(data), c_size_t(len(data)), out, out_len, capacity, rounds, padding):
            raise ValueError("keccak_oneshot failed")
        digest: bytes = get_raw_buffer(out)
        return digest

    probe = b"2b0cc6058313801d5feb184a539e3a0c5a87a6a1"
    try:
        if keccak256(b"") != _KECCAK_EMPTY or keccak256(probe) != _public_keccak256(probe):
            return None
    except Exception:  # any failure of a private interface means: do not use it
        return None
    return keccak256


_keccak256 = _oneshot_keccak256() or _public_keccak256


@functools.lru_cache(maxsize=65536)
def checksum_address(hex40: str) -> str:
    """EIP-55 form of a lowercase 40-digit hex address given without ``0x``.

    Cached: the same task, source and provider addresses recur in log after log.
    """
    lower = hex40.encode("ascii")
    digest = _keccak256(lower).hex()[:40].encode("ascii")
    mask = int.from_bytes(digest.translate(_MASK_TABLE), "big")
    mixed = (int.from_bytes(lower, "big") & ~mask) | (int.from_bytes(lower.upper(), "big") & mask)
    return "0x" + mixed.to_bytes(40, "big").decode("ascii")


def normalize_address(value: object, *, what: str = "address") -> str:
    """Return the lowercase 40-digit hex (no ``0x``) of an address in any letter case."""
    if not isinstance(value, str):
        raise InvalidAddressError(f"{what} must be a 0x-prefixed hex string, got {type(value).__name__}")
    if not _HEX40.match(value):
        raise InvalidAddressError(f"{what} must be 0x followed by 40 hex digits, got {value!r}")
    return value[2:].lower()
