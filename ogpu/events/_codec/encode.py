"""Nexus event logs from values in ABI order: the one encoder, for the fake node and the dev nodes.

Decoding is what the library does; encoding is only for making logs to
follow (``FakeNode.emit``, the dev nodes' log emitter, the tests). eth-abi
is imported with this module, so only those import it.
"""

from __future__ import annotations

from typing import Any

from eth_abi.abi import encode as abi_encode

from ogpu.events._codec.abi import EVENTS, canonical_type, load_abi

__all__ = ["ABI_EVENTS", "encode_event"]

# Each event's ABI entry by name, read from the vendored ABI once.
ABI_EVENTS: dict[str, dict[str, Any]] = {
    entry["name"]: entry for entry in load_abi() if entry["type"] == "event"
}


def encode_event(event: str, *values: Any) -> tuple[list[str], str]:
    """``(topics, data)`` of a Nexus event log with ``values`` in ABI order.

    Indexed values go to topics, the rest to ``data``; eth-abi's own errors
    (a value of the wrong type or size) pass through.
    """
    inputs = ABI_EVENTS[event]["inputs"]
    if len(values) != len(inputs):
        raise TypeError(f"{event} takes {len(inputs)} values, got {len(values)}")
    topics = [EVENTS[event].topic0]
    types: list[str] = []
    plain: list[Any] = []
    for param, value in zip(inputs, values, strict=True):
        if param["indexed"]:
            topics.append("0x" + abi_encode([canonical_type(param)], [value]).hex())
        else:
            types.append(canonical_type(param))
            plain.append(value)
    return topics, "0x" + abi_encode(types, plain).hex()
