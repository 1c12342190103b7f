"""The vendored Nexus ABI and pure decoding of raw logs into typed events.

Nothing here does I/O beyond reading the ABI file once at import. A raw log
is the dict a node returns (``topics``, ``data``, ``blockNumber``, ...).

Events whose fields are all static words (the six the watchers follow, and
most others) are decoded by slicing 32-byte words straight out of the hex
``data`` string, with the same checks eth-abi applies (zero padding, integer
width, known enum values). That keeps one log under a few microseconds; eth-abi
costs about 30 us per call. Events with dynamic fields (``SourceUpdated``)
go through eth-abi, imported the first time such a log is decoded: it pulls
in eth-utils and pydantic, several times what the rest of ``ogpu.events``
costs to import. A test decodes every event both ways and compares.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from Crypto.Hash import keccak

from ogpu._errors import InvalidArgumentError, LogDecodeError
from ogpu.events._codec import models as models
from ogpu.events._codec.address import checksum_address
from ogpu.types import DeliveryMethod, Environment, ResponseStatus, SourceStatus, TaskStatus
from ogpu.types.enums import unknown_member

__all__ = ["ABI_FILE_NAME", "EVENTS", "EVENTS_BY_TOPIC", "EventSpec", "RawLog", "event_named", "load_abi"]

log = logging.getLogger("ogpu.events")

RawLog = dict[str, Any]
ABI_FILE_NAME = "nexus-events.json"

_EVENT_CLASSES: dict[str, type[Any]] = {
    "TaskPublished": models.TaskPublishedEvent,
    "Attempted": models.AttemptedEvent,
    "ResponseSubmitted": models.ResponseSubmittedEvent,
    "ResponseStatusChanged": models.ResponseStatusChangedEvent,
    "TaskStatusChanged": models.TaskStatusChangedEvent,
    "Registered": models.RegisteredEvent,
    "SourcePublished": models.SourcePublishedEvent,
    "SourceStatusChanged": models.SourceStatusChangedEvent,
    "SourceUpdated": models.SourceUpdatedEvent,
    "OwnershipTransferred": models.OwnershipTransferredEvent,
}
_ENUMS: dict[str, type[Enum]] = {
    "TaskStatus": TaskStatus,
    "ResponseStatus": ResponseStatus,
    "SourceStatus": SourceStatus,
    "DeliveryMethod": DeliveryMethod,
}
# uint8 fields that the contract treats as enums or flags without saying so
# in internalType.
_NAMED_UINT8: dict[str, type[Enum]] = {
    "preferredEnvironment": Environment,
    "imageEnvironments": Environment,
    "deliveryMethod": DeliveryMethod,
}
_ZERO_PAD = "0" * 24
# int(word, 16) would also take "_", spaces and signs: check the digits once per log.
_HEX_DATA = re.compile(r"0x[0-9a-f]*\Z")
# checksum_address trusts its input, so a garbled word must stop here.
_ADDRESS_WORD = re.compile(r"0{24}[0-9a-f]{40}")


def load_abi() -> list[dict[str, Any]]:
    """Read the vendored ABI: inside the installed package, else the checkout's ``abi/``."""
    packaged = resources.files("ogpu").joinpath("abi").joinpath(ABI_FILE_NAME)
    if packaged.is_file():
        text = packaged.read_text(encoding="utf-8")
    else:
        text = (Path(__file__).resolve().parents[3] / "abi" / ABI_FILE_NAME).read_text("utf-8")
    entries: list[dict[str, Any]] = json.loads(text)
    return entries


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def canonical_type(param: dict[str, Any]) -> str:
    """ABI type as it appears in a signature: tuples spelled out as ``(a,b,...)``."""
    typ: str = param["type"]
    if typ.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param["components"])
        return f"({inner}){typ[len('tuple') :]}"
    return typ


def keccak_hex(text: str) -> str:
    return "0x" + keccak.new(digest_bits=256, data=text.encode()).hexdigest()


# --- converters: one per ABI parameter, from a python value or a hex word ---

Converter = Callable[[Any], Any]


def _convert_address(value: Any) -> str:
    text = value if isinstance(value, str) else value.hex()
    return checksum_address(text.lower().removeprefix("0x"))


def _uint_converter(bits: int) -> Converter:
    limit = 1 << bits

    def convert(value: Any) -> int:
        if not 0 <= value < limit:
            raise LogDecodeError(f"value {value} does not fit uint{bits}")
        return int(value)

    return convert


# (enum, unknown value or bits) already warned about: one WARNING per value, not per event.
_WARNED: set[tuple[str, int]] = set()


def _warn_unknown(enum_name: str, value: int, kept: str) -> None:
    if (enum_name, value) in _WARNED:
        return
    _WARNED.add((enum_name, value))
    log.warning(
        "a %s value this ogpu does not know: %d (a newer Nexus contract?); events keep it as %s",
        enum_name,
        value,
        kept,
    )


def _enum_converter(enum_cls: type[Enum]) -> Converter:
    # A contract gains statuses and flag bits; the enums here may be older.
    # An event is never dropped for that: the value is kept (IntFlag keeps
    # unknown bits, an IntEnum gets an UNKNOWN_<n> member equal to it) and
    # said once.
    if issubclass(enum_cls, Environment):
        allowed = int(Environment.CPU | Environment.NVIDIA | Environment.AMD)

        def convert_flags(value: Any) -> Environment:
            if not 0 <= value < 256:  # a uint8 on chain: anything else is a malformed log
                raise LogDecodeError(f"Environment bits {value} do not fit uint8")
            extra = value & ~allowed
            if extra:
                _warn_unknown("Environment", extra, f"Environment({value}), unknown bits {extra:#x} included")
            return Environment(value)

        return convert_flags
    assert issubclass(enum_cls, IntEnum)
    int_enum: type[IntEnum] = enum_cls

    def convert(value: Any) -> Enum:
        try:
            return int_enum(value)
        except ValueError:
            if not 0 <= value < 256:
                raise LogDecodeError(f"{int_enum.__name__} value {value} does not fit uint8") from None
            member = unknown_member(int_enum, int(value))
            _warn_unknown(int_enum.__name__, int(value), f"{int_enum.__name__}.{member.name} (== {value})")
            return member

    return convert


def _convert_bool(value: Any) -> bool:
    if value not in (0, 1, True, False):
        raise LogDecodeError(f"invalid bool value {value}")
    return bool(value)


def _converter_for(param: dict[str, Any]) -> Converter:
    typ: str = param["type"]
    internal: str = param.get("internalType", typ)
    if typ == "address":
        return _convert_address
    if typ == "bool":
        return _convert_bool
    if internal.startswith("enum "):
        return _enum_converter(_ENUMS[internal.removeprefix("enum ").split(".")[-1]])
    if param["name"] in _NAMED_UINT8:
        return _enum_converter(_NAMED_UINT8[param["name"]])
    if typ.startswith("uint"):
        return _uint_converter(int(typ[4:] or 256))
    if typ in ("string", "bytes"):
        return lambda value: value
    if typ == "tuple":
        return _struct_converter(param)
    raise LogDecodeError(f"no converter for ABI type {typ}")


def _struct_converter(param: dict[str, Any]) -> Converter:
    if param.get("internalType") != "struct SourceParams":
        raise LogDecodeError(f"no dataclass for struct {param.get('internalType')}")
    parts = [_converter_for(c) for c in param["components"]]

    def convert(value: Any) -> models.SourceParams:
        return models.SourceParams(*(conv(v) for conv, v in zip(parts, value, strict=True)))

    return convert


def _word_reader(param: dict[str, Any]) -> Callable[[str], Any]:
    """Read one static parameter from its 64-hex-digit word."""
    convert = _converter_for(param)
    if param["type"] == "address":

        def read_address(word: str) -> str:
            if not _ADDRESS_WORD.fullmatch(word):
                why = "non-zero padding" if word[:24] != _ZERO_PAD else "non-hex digits"
                raise LogDecodeError(f"address word has {why}: 0x{word}")
            return checksum_address(word[24:])

        return read_address
    return lambda word: convert(int(word, 16))


# f(x) from C where Python has it (3.11): it runs for every field of every log.
_call: Callable[[Callable[[str], Any], str], Any] = getattr(operator, "call", lambda read, word: read(word))

# One word of data as a regex group: an address's 40 digits after 24 zeros, or any 64 digits.
_WORD_PATTERN = {True: "0" * 24 + "([0-9a-f]{40})", False: "([0-9a-f]{64})"}


def _group_reader(param: dict[str, Any]) -> Callable[[str], Any]:
    """Read one static parameter from what its ``_WORD_PATTERN`` group captured."""
    if param["type"] == "address":
        return checksum_address
    plain = param.get("internalType", param["type"]) == param["type"] and param["name"] not in _NAMED_UINT8
    if plain and param["type"] in ("uint256", "uint"):
        return partial(int, base=16)  # 64 hex digits always fit: nothing to check
    convert = _converter_for(param)
    return lambda digits: convert(int(digits, 16))


def _is_word_type(param: dict[str, Any]) -> bool:
    typ: str = param["type"]
    return typ in ("address", "bool") or re.fullmatch(r"uint\d*", typ) is not None


# --- the per-event spec ---


@dataclass(frozen=True)
class EventSpec:
    """One Nexus event: how to recognise its logs and decode them."""

    name: str
    signature: str
    topic0: str
    event_class: type[Any]
    field_names: tuple[str, ...]
    # Position of each non-indexed address field in the data words, for the
    # shared stream to route a log without decoding it first.
    data_word_of_field: dict[str, int]
    decode_payload: Callable[[Sequence[str], str], list[Any]]
    # False when the dataclass puts a payload field after the chain fields
    # (RegisteredEvent, to keep the ogpu package 0.2's positional order).
    payload_first: bool = True

    def decode(self, log: RawLog) -> Any:
        """Turn a raw log into this event's dataclass, or raise :class:`LogDecodeError`."""
        try:
            payload = self.decode_payload(log["topics"], log["data"].lower())
            where = (
                int(log["blockNumber"], 16),
                log["transactionHash"].lower(),
                int(log["logIndex"], 16),
                log["blockHash"].lower(),
            )
            if self.payload_first:
                return self.event_class(*payload, *where)
            return self.event_class(
                **dict(zip(self.field_names, payload, strict=True)),
                **dict(zip(models.CHAIN_FIELDS, where, strict=True)),
            )
        except LogDecodeError as exc:
            raise LogDecodeError(f"{self.name} log {_where(log)}: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise LogDecodeError(f"malformed {self.name} log {_where(log)}: {exc!r}") from None

    def scope_hex(self, log: RawLog, field: str) -> str:
        """Lowercase hex (no ``0x``) of an address field, read without full decoding."""
        return str(log["data"][self.scope_slice(field)]).lower()

    def scope_slice(self, field: str) -> slice:
        """Where :meth:`scope_hex` finds ``field`` in a log's ``data``."""
        start = 2 + 64 * self.data_word_of_field[field] + 24
        return slice(start, start + 40)


def _where(log: RawLog) -> str:
    return f"(block {log.get('blockNumber')}, tx {log.get('transactionHash')}, index {log.get('logIndex')})"


def _build_spec(entry: dict[str, Any]) -> EventSpec:
    name: str = entry["name"]
    inputs: list[dict[str, Any]] = entry["inputs"]
    signature = f"{name}({','.join(canonical_type(p) for p in inputs)})"
    indexed = [p for p in inputs if p["indexed"]]
    plain = [p for p in inputs if not p["indexed"]]
    # The dataclass takes fields in ABI order; remember where each comes from.
    order = [("topic", indexed.index(p)) if p["indexed"] else ("data", plain.index(p)) for p in inputs]
    topic_readers = [_word_reader(p) for p in indexed]

    if all(_is_word_type(p) for p in plain):
        word_readers = [_word_reader(p) for p in plain]
        words_len = 2 + 64 * len(plain)

        def read_words(data: str) -> list[Any]:
            if len(data) != words_len:
                raise LogDecodeError(f"expected {len(plain)} words of data, got {len(data) - 2} hex digits")
            if not _HEX_DATA.match(data):
                raise LogDecodeError("data is not 0x-prefixed hex")
            return [read(data[2 + 64 * i : 66 + 64 * i]) for i, read in enumerate(word_readers)]

        # The common case in one match: every word's digits and padding checked
        # at once and the values captured, which halves what decoding a log
        # costs. Data it refuses is read word by word above, which says why.
        whole = re.compile("0x" + "".join(_WORD_PATTERN[p["type"] == "address"] for p in plain))
        group_readers = [_group_reader(p) for p in plain]

        def read_data(data: str) -> list[Any]:
            match = whole.fullmatch(data)
            if match is None:
                return read_words(data)
            # One group per reader, by construction: not checked again per log.
            return list(map(_call, group_readers, match.groups()))

    else:
        types = [canonical_type(p) for p in plain]
        converters = [_converter_for(p) for p in plain]

        def read_data(data: str) -> list[Any]:
            from eth_abi.abi import decode as abi_decode  # see the module docstring: loaded on first use

            try:
                values = abi_decode(types, bytes.fromhex(data[2:]))
            except Exception as exc:  # eth-abi raises a family of its own errors
                raise LogDecodeError(f"eth-abi could not decode data: {exc}") from None
            return [conv(v) for conv, v in zip(converters, values, strict=True)]

    # Every field in data (all Nexus events but OwnershipTransferred): nothing to interleave.
    data_only = bool(plain) and not indexed

    def decode_payload(topics: Sequence[str], data: str) -> list[Any]:
        if len(topics) != 1 + len(indexed):
            raise LogDecodeError(f"expected {1 + len(indexed)} topics, got {len(topics)}")
        if data_only:
            return read_data(data)
        from_data = read_data(data) if plain or data not in ("0x", "") else []
        from_topics = [read(topics[1 + i][2:].lower()) for i, read in enumerate(topic_readers)]
        return [from_topics[i] if src == "topic" else from_data[i] for src, i in order]

    word_of_field = {snake_case(p["name"]): i for i, p in enumerate(plain) if p["type"] == "address"}
    field_names = tuple(snake_case(p["name"]) for p in inputs)
    event_class = _EVENT_CLASSES[name]
    class_order = tuple(f.name for f in dataclasses.fields(event_class))
    return EventSpec(
        name=name,
        signature=signature,
        topic0=keccak_hex(signature),
        event_class=event_class,
        field_names=field_names,
        data_word_of_field=word_of_field,
        decode_payload=decode_payload,
        payload_first=class_order == (*field_names, *models.CHAIN_FIELDS),
    )


EVENTS: dict[str, EventSpec] = {
    spec.name: spec for spec in map(_build_spec, (e for e in load_abi() if e["type"] == "event"))
}
EVENTS_BY_TOPIC: dict[str, EventSpec] = {spec.topic0: spec for spec in EVENTS.values()}


def spelling_key(name: str) -> str:
    """One key for a name in kebab-case, snake_case, CamelCase or any letter case."""
    return name.replace("-", "").replace("_", "").lower()


_EVENTS_BY_SPELLING: dict[str, EventSpec] = {spelling_key(name): spec for name, spec in EVENTS.items()}


def event_named(name: str) -> EventSpec | None:
    """The Nexus event called ``name`` in any spelling: ``TaskPublished``, ``task-published``,
    ``task_published``, ``TASKPUBLISHED``; ``None`` if there is none."""
    return _EVENTS_BY_SPELLING.get(spelling_key(name))


def spec_of(event: object) -> EventSpec:
    """The Nexus event named ``event`` (any spelling) or whose class it is (``AttemptedEvent``).

    Raises ``InvalidArgumentError`` naming the known events for anything else.
    """
    name = event if isinstance(event, str) else getattr(event, "event_name", None)
    spec = event_named(name) if isinstance(name, str) else None
    if spec is None:
        raise InvalidArgumentError(f"unknown Nexus event {event!r}; known: {', '.join(EVENTS)}")
    return spec
