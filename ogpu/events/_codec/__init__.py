"""Codec layer: the vendored ABI, addresses, event dataclasses and positions. No I/O."""
