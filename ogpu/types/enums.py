"""Nexus enums (uint8 on chain), ``Role``, and helpers for ``Environment`` masks.

The import path is the one the ``ogpu`` package 0.2 used (``ogpu.types.enums``);
everything here is also importable from ``ogpu.types``.
"""

from __future__ import annotations

from enum import Enum, IntEnum, IntFlag
from typing import TypeVar

from ogpu._errors import InvalidArgumentError

__all__ = [
    "DeliveryMethod",
    "Environment",
    "ResponseStatus",
    "Role",
    "SourceStatus",
    "TaskStatus",
    "combine_environments",
    "environment_names",
    "parse_environments",
    "unknown_member",
]

_E = TypeVar("_E", bound=IntEnum)
# One object per (enum, value): an unknown value decoded twice is the same member (``is`` holds).
_UNKNOWN: dict[tuple[type[IntEnum], int], IntEnum] = {}


def unknown_member(enum_cls: type[_E], value: int) -> _E:
    """A member of ``enum_cls`` for a value the contract has and this package does not know yet.

    ``unknown_member(TaskStatus, 7)`` is a ``TaskStatus`` equal to ``7``
    (``== 7``, ``int()`` and hashing as 7) named ``UNKNOWN_7``, so events
    decoded from a newer contract keep their value and their type. It is not
    listed by iterating the enum, and ``TaskStatus(7)`` still raises
    ``ValueError``: only decoding makes these.
    """
    key = (enum_cls, value)
    member = _UNKNOWN.get(key)
    if member is None:
        member = int.__new__(enum_cls, value)
        member._name_ = f"UNKNOWN_{value}"
        member._value_ = value
        _UNKNOWN[key] = member
    assert isinstance(member, enum_cls)
    return member


class TaskStatus(IntEnum):
    NEW = 0
    ATTEMPTED = 1
    RESPONDED = 2
    CANCELED = 3
    EXPIRED = 4
    FINALIZED = 5


class ResponseStatus(IntEnum):
    SUBMITTED = 0
    CONFIRMED = 1


class SourceStatus(IntEnum):
    ACTIVE = 0
    INACTIVE = 1


class Environment(IntFlag):
    """Bit flags: a source may accept several environments at once."""

    CPU = 1
    NVIDIA = 2
    AMD = 4


class DeliveryMethod(IntEnum):
    # An IntEnum where the ogpu package 0.2 had a plain Enum: members, names,
    # values and DeliveryMethod(0) behave the same, and it also compares with
    # the uint8 the contract stores.
    MANUAL_CONFIRMATION = 0
    FIRST_RESPONSE = 1


class Role(Enum):
    """Who acts on the Nexus: a task's client, a provider, or a provider's master."""

    CLIENT = "client"
    PROVIDER = "provider"
    MASTER = "master"


def combine_environments(*environments: Environment) -> int:
    """The mask (an int) with every given environment's bit set; ``0`` for none.

    ``combine_environments(Environment.CPU, Environment.AMD) == 5``. Anything
    but an ``Environment`` raises ``InvalidArgumentError``.
    """
    mask = 0
    for env in environments:
        if not isinstance(env, Environment):
            raise InvalidArgumentError(f"combine_environments() takes Environment members, got {env!r}")
        mask |= env.value
    return mask


def _check_mask(mask: object, caller: str) -> int:
    if not isinstance(mask, int) or isinstance(mask, bool) or mask < 0:
        raise InvalidArgumentError(f"{caller}() takes a mask, an int >= 0, got {mask!r}")
    return int(mask)


def parse_environments(mask: int) -> list[Environment]:
    """The single environments set in ``mask``, in the order CPU, NVIDIA, AMD.

    ``parse_environments(5) == [Environment.CPU, Environment.AMD]``. Bits no
    environment has yet are ignored, so a mask from a newer contract still
    parses. A negative or non-int mask raises ``InvalidArgumentError``.
    """
    bits = _check_mask(mask, "parse_environments")
    return [env for env in Environment if bits & env.value]


def environment_names(mask: int) -> list[str]:
    """The names of the environments set in ``mask``: ``environment_names(3) == ["CPU", "NVIDIA"]``."""
    bits = _check_mask(mask, "environment_names")
    return [env.name for env in Environment if bits & env.value and env.name]
