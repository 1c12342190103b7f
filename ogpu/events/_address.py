"""Address checking and EIP-55 checksumming, fast enough for the log hot path."""

from __future__ import annotations

import functools
import re

from Crypto.Hash import keccak

from ogpu._errors import InvalidAddressError

__all__ = ["checksum_address", "normalize_address"]

_HEX40 = re.compile(r"^0[xX][0-9a-fA-F]{40}$")

# Maps each keccak hex digit to 0x00 (keep the letter's case) or 0xFF (upper-case
# it), so the whole choice is made by bytes.translate and integer masks in C
# instead of a 40-step Python loop.
_MASK_TABLE = bytes(0xFF if chr(i) in "89abcdef" else 0 for i in range(256))


@functools.lru_cache(maxsize=65536)
def checksum_address(hex40: str) -> str:
    """EIP-55 form of a lowercase 40-digit hex address given without ``0x``.

    Cached: the same task, source and provider addresses recur in log after log.
    """
    lower = hex40.encode("ascii")
    digest = keccak.new(digest_bits=256, data=lower).hexdigest()[:40].encode("ascii")
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
