"""From an event's name and its dataclass field names to a log the fake node can mine.

``FakeNode.emit("TaskStatusChanged", task=T, status=TaskStatus.FINALIZED)``
arrives here: the name in any spelling the watchers accept (or the event
class), the fields by the names of the event's dataclass. Every mistake is an
``InvalidArgumentError`` naming the event and the field, raised before
anything is mined; so is a value the stream's decoder would reject, since
the watchers would never yield it. A status or flag the enums lack (a newer
contract's) is mined: the watchers yield it as an ``UNKNOWN_<n>`` member.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any

from ogpu._errors import InvalidArgumentError, LogDecodeError
from ogpu.events._codec.abi import EVENTS_BY_TOPIC, spec_of
from ogpu.events._codec.address import normalize_address
from ogpu.events._codec.encode import ABI_EVENTS, encode_event
from ogpu.events._codec.models import CHAIN_FIELDS, NexusEvent
from ogpu.events._fake.chain import Block, EncodedLog

__all__ = ["EventItem", "decoded", "encode_fields"]

# One event to mine: its name (or class) and its payload fields by name.
EventItem = tuple[str | type[Any], Mapping[str, Any]]


def encode_fields(event: object, fields: Mapping[str, Any], address: str) -> EncodedLog:
    """``(topics, data, address)`` of ``event`` with ``fields``, checked as the watchers will decode it."""
    spec = spec_of(event)
    wanted = ", ".join(spec.field_names)
    unknown = [name for name in fields if name not in spec.field_names]
    if unknown:
        # Where a log sits on chain is the node's to decide, not the caller's.
        placed = [name for name in unknown if name in CHAIN_FIELDS]
        why = f" ({', '.join(placed)}: set by the node when it mines)" if placed else ""
        raise InvalidArgumentError(
            f"{spec.name} has no field {', '.join(unknown)}{why}; its fields are {wanted}"
        )
    missing = [name for name in spec.field_names if name not in fields]
    if missing:
        raise InvalidArgumentError(f"{spec.name} needs {', '.join(missing)}; its fields are {wanted}")
    params = ABI_EVENTS[spec.name]["inputs"]
    values = [
        _value(spec.name, name, param, fields[name])
        for name, param in zip(spec.field_names, params, strict=True)
    ]
    try:
        topics, data = encode_event(spec.name, *values)
    except Exception as exc:  # eth-abi raises a family of its own errors for a bad value
        raise InvalidArgumentError(f"{spec.name} fields cannot be encoded: {exc}") from None
    try:
        spec.decode_payload(topics, data)
    except LogDecodeError as exc:
        raise InvalidArgumentError(f"{spec.name}: {exc}, so no watcher would yield it") from None
    return topics, data, address.lower()


def _value(event: str, field: str, param: Mapping[str, Any], value: Any) -> Any:
    kind: str = param["type"]
    if kind == "address":
        return "0x" + normalize_address(value, what=f"{event} {field}")
    if kind.startswith("uint"):
        bits = int(kind[4:] or 256)
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidArgumentError(f"{event} {field} must be an int, got {value!r}")
        if not 0 <= value < 1 << bits:
            raise InvalidArgumentError(f"{event} {field} must fit {kind} (0 to 2**{bits} - 1), got {value}")
        return int(value)
    if kind == "tuple" and dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.astuple(value)  # SourceParams, field by field in ABI order
    return value


def decoded(blocks: list[Block]) -> list[NexusEvent]:
    """The events of ``blocks`` as the watchers yield them, in chain order (undecodable logs left out)."""
    events: list[NexusEvent] = []
    for raw in (raw for block in blocks for raw in block.logs):
        spec = EVENTS_BY_TOPIC.get(raw["topics"][0]) if raw["topics"] else None
        if spec is not None:
            with contextlib.suppress(LogDecodeError):
                events.append(spec.decode(raw))
    return events
