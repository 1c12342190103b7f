"""Where an event sits in chain order, as a value a service can store and give back.

``EventPosition`` is what ``after=`` takes (besides an event or a
``(block_number, log_index)`` pair) and what ``ogpu-events --state`` saves.
It orders by ``(block_number, log_index)``, which is chain order; the block
hash rides along so that a resume can tell whether the block it names is
still on the chain. No I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ogpu._errors import InvalidArgumentError

__all__ = ["EventPosition", "OnChain", "position_of"]

_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")


def _count(value: object, what: str) -> int:
    # bool is an int to Python, never a block number to a user.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgumentError(f"{what} must be an int >= 0, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, order=True)
class EventPosition:
    """An event's place on chain: ``block_number``, ``log_index`` and the block's hash.

    Positions compare in chain order, by ``(block_number, log_index)`` only:
    two positions with the same numbers are the same place, even when a
    reorg put another block there. ``block_hash`` is ``None`` for a position
    built from a bare ``(block_number, log_index)`` pair, which cannot be
    checked against the chain.

    ``str(position)`` is ``"block:index:hash"`` (``"block:index"`` without a
    hash), and :meth:`parse` reads it back::

        saved = str(event.position)          # "1207:3:0x5b1e..."
        EventPosition.parse(saved) == event.position

    Raises:
        InvalidArgumentError: a negative or non-int number, or a hash that is
            not ``0x`` + 64 hex digits.
    """

    block_number: int
    log_index: int
    block_hash: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _count(self.block_number, "block_number")
        _count(self.log_index, "log_index")
        if self.block_hash is not None:
            if not isinstance(self.block_hash, str) or not _HASH.match(self.block_hash):
                raise InvalidArgumentError(
                    f"block_hash must be '0x' + 64 hex digits, got {self.block_hash!r:.80}"
                )
            # Nodes answer hashes in lowercase; comparisons must not depend on the case given.
            object.__setattr__(self, "block_hash", self.block_hash.lower())

    def __str__(self) -> str:
        head = f"{self.block_number}:{self.log_index}"
        return head if self.block_hash is None else f"{head}:{self.block_hash}"

    @classmethod
    def parse(cls, text: str) -> EventPosition:
        """The position ``str(position)`` wrote; ``InvalidArgumentError`` for anything else."""
        if not isinstance(text, str):
            raise InvalidArgumentError(f"an event position is text like '1207:3:0x5b1e...', got {text!r}")
        parts = text.strip().split(":")
        if len(parts) not in (2, 3) or not all(p.isdigit() and p.isascii() for p in parts[:2]):
            raise InvalidArgumentError(
                f"an event position is 'block:index' or 'block:index:0xhash', got {text!r:.120}"
            )
        return cls(int(parts[0]), int(parts[1]), parts[2] if len(parts) == 3 else None)


class OnChain:
    """Gives every event dataclass its ``position`` (a mixin: no fields, no slots of its own)."""

    __slots__ = ()

    block_number: int
    log_index: int
    block_hash: str | None

    @property
    def position(self) -> EventPosition:
        """Where this event sits: ``EventPosition(block_number, log_index, block_hash)``."""
        return EventPosition(self.block_number, self.log_index, self.block_hash or None)


def position_of(after: object) -> EventPosition:
    """What ``after=`` names: an event, an ``EventPosition`` or a ``(block_number, log_index)`` pair."""
    if isinstance(after, EventPosition):
        return after
    if isinstance(after, OnChain):
        return after.position
    if isinstance(after, tuple | list) and len(after) == 2:
        return EventPosition(_count(after[0], "after's block_number"), _count(after[1], "after's log_index"))
    raise InvalidArgumentError(
        "after must be an event a watcher yielded, an EventPosition or a (block_number, log_index) "
        f"pair, got {after!r:.120}"
    )
