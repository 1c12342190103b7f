"""What a node's logs mean against the chain the stream pins, and which a watcher wants. No I/O here.

The answers themselves are checked first (``_net.answers``: well formed,
this contract's, inside the range asked for); here each log is placed on
the pinned chain: delivered now, held until a head reaches its block, or
dropped with a WARNING when the chain has another block there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ogpu.events._codec.abi import EventSpec, RawLog
from ogpu.events._stream.chain import ChainView, LogPlace

__all__ = ["WatcherMatch", "first_contradicted", "triage", "uncontradicted"]

log = logging.getLogger("ogpu.events")


class WatcherMatch:
    """Whether a raw log is one a watcher wants: one of its events, of its scope if it has one.

    The one definition for history, the after= check and the lane (which
    asks an unscoped one for the event, then routes by the same
    ``EventSpec.scope_hex`` key). Runs for every log a catch-up reads, so
    hex is compared as the node gave it first, and lowercased only if that
    fails.
    """

    __slots__ = ("_by_topic", "_scope", "_slices")

    def __init__(self, specs: Iterable[EventSpec], field: str | None, scope: str | None) -> None:
        self._by_topic = {spec.topic0: spec for spec in specs}
        self._scope = scope
        # Where the scoping address sits in each event's data (as EventSpec.scope_hex reads it).
        self._slices = (
            {spec.name: spec.scope_slice(field) for spec in self._by_topic.values()}
            if field is not None
            else None
        )

    def spec_of(self, raw: RawLog) -> EventSpec | None:
        """The watcher's event ``raw`` is a log of, or ``None`` if the watcher does not want it."""
        topics = raw.get("topics")
        if not topics:
            return None
        # Nodes spell hex in lowercase: as given first, lowercased only if that fails.
        spec = self._by_topic.get(topics[0]) or self._by_topic.get(str(topics[0]).lower())
        if spec is None or self._slices is None:
            return spec
        word = raw["data"][self._slices[spec.name]]
        return spec if word == self._scope or word.lower() == self._scope else None


def triage(view: ChainView, logs: list[RawLog], *, asked: bool) -> tuple[list[RawLog], list[RawLog]]:
    """Split logs into those to deliver now and those to hold until a head reaches their block.

    ``asked``: the logs answer a range the stream asked for, which ends at or
    below a head it believed, so none is held back. A log whose block the
    pinned chain contradicts is dropped: if a reorg brings its block back, the
    stream reads it again from there.
    """
    ready: list[RawLog] = []
    held: list[RawLog] = []
    rivals = set() if asked else _rival_heights(logs)
    for raw in logs:
        block_hash = raw.get("blockHash")
        if raw.get("removed") or block_hash is None:
            ready.append(raw)  # the lane warns about removals and skips pending logs
            continue
        number = int(raw["blockNumber"], 16)
        place = (view.place_contested_log if number in rivals else view.place_log)(number, block_hash)
        if place is LogPlace.OK and not asked and not view.vouches(number, block_hash):
            # A filter's word alone for a block no header has shown yet (a
            # head that jumped leaves such heights for a later tick to pin):
            # a made-up or stale log must not be yielded on it. It waits.
            held.append(raw)
        elif place is LogPlace.OK:
            ready.append(raw)
        elif place is LogPlace.AHEAD or place is LogPlace.WAIT:
            (ready if asked else held).append(raw)
        elif place is LogPlace.STALE and number in rivals:
            log.warning(
                "dropped a log of block %d with hash %s: the same answer reported another block at "
                "that height, and the chain has that one (an orphan of a reorg)",
                number,
                block_hash,
            )
        elif place is LogPlace.BEYOND:
            log.warning(
                "dropped a log of block %d: no head has shown it (believed head %s)", number, view.head
            )
        else:
            log.warning(
                "dropped a log of block %d with hash %s: the chain the stream follows has another "
                "block there (a reorg that brings it back makes the stream read it again)",
                number,
                block_hash,
            )
    if held and not asked:
        # Nothing newer before something older: what sits above a log that
        # waits for its header waits with it.
        lowest = min(int(raw["blockNumber"], 16) for raw in held)
        later = [raw for raw in ready if _settled_above(raw, lowest)]
        if later:
            held += later
            ready = [raw for raw in ready if not _settled_above(raw, lowest)]
    return ready, held


def first_contradicted(view: ChainView, logs: list[RawLog]) -> int | None:
    """The lowest block of a log whose hash the pinned chain contradicts, if any.

    A read that returns such a log was served by a chain that moved under the
    stream (a reorg, a replaced chain): nothing of it from that block on may
    be delivered or move a cursor before the stream has followed the move.
    """
    lowest: int | None = None
    for raw in logs:
        block_hash = raw.get("blockHash")
        if raw.get("removed") or block_hash is None:
            continue
        number = int(raw["blockNumber"], 16)
        pinned = view.pinned(number)
        if pinned is not None and pinned != block_hash.lower() and (lowest is None or number < lowest):
            lowest = number
    if lowest is not None:
        view.recheck(lowest)  # so the next tick finds the fork, if there is one
    return lowest


def uncontradicted(view: ChainView, logs: list[RawLog], last: int) -> tuple[list[RawLog], int, int | None]:
    """The part of a read ending at ``last`` that may move a cursor: ``(logs, last block, moved)``.

    All of it, ``moved`` None, unless a log's hash is contradicted by the
    pinned chain (see :func:`first_contradicted`): then only the logs below
    that block ``moved``, and the read counts up to ``moved - 1`` (below its
    first block, if that is where the chain moved: nothing of it counts).
    """
    moved = first_contradicted(view, logs)
    if moved is None:
        return logs, last, None
    return [raw for raw in logs if int(raw["blockNumber"], 16) < moved], moved - 1, moved


def _settled_above(raw: RawLog, number: int) -> bool:
    # Removals and pending logs are no events to order: the lane only warns about or skips them.
    return (
        not raw.get("removed") and raw.get("blockHash") is not None and int(raw["blockNumber"], 16) > number
    )


def _rival_heights(logs: list[RawLog]) -> set[int]:
    """Heights for which ``logs`` carry more than one block hash (both sides of a reorg)."""
    hashes: dict[int, str] = {}
    rivals: set[int] = set()
    for raw in logs:
        block_hash = raw.get("blockHash")
        if raw.get("removed") or block_hash is None:
            continue
        number = int(raw["blockNumber"], 16)
        block_hash = block_hash.lower()
        if hashes.setdefault(number, block_hash) != block_hash:
            rivals.add(number)
    return rivals
