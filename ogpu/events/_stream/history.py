"""Past events for one watcher: ``eth_getLogs`` from its ``from_block`` up to where it joined the stream.

History is read per watcher (scoped by its event topics) while the shared
stream runs on; what it yields is told to the watcher's lane, so a reorg
that later takes such a log off the chain is named in the WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import operator
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Protocol

from ogpu._errors import LogDecodeError
from ogpu.events._codec.abi import EventSpec, RawLog
from ogpu.events._net.answers import chain_order
from ogpu.events._net.ranges import LogRangeReader, ProgressCallback
from ogpu.events._stream.screen import WatcherMatch

__all__ = ["read_history"]

log = logging.getLogger("ogpu.events")

# Logs handled between two turns of the event loop. A consumer that never
# awaits anything of its own would otherwise keep the loop from sending the
# next chunk's request and reading its answer (each read is 64 KiB) until
# this chunk is done, and the read-ahead would overlap nothing.
_LOGS_PER_TURN = 64


class ChainGuard(Protocol):
    """What history asks of the shared stream so it follows the chain the stream pins."""

    def end(self) -> int:
        """The last block history still owes: a reorg below it hands the rest to the live lane."""
        ...

    async def on_chain(self, logs: list[RawLog], last: int) -> bool:
        """Whether a chunk ending at ``last`` came from the chain the stream pins."""
        ...

    async def settle(self) -> None:
        """Wait for the stream to follow a chain that moved (or for a tick, if it did not)."""
        ...


async def read_history(
    reader: LogRangeReader,
    specs: Sequence[EventSpec],
    field: str | None,
    scope: str | None,
    first: int,
    last: int,
    *,
    progress: ProgressCallback | None,
    remember: Callable[[list[RawLog]], None],
    stream_error: Callable[[], BaseException | None],
    guard: ChainGuard | None = None,
) -> AsyncGenerator[Any, None]:
    """Decoded past events of ``specs`` in ``first..last``, scoped like a watcher, in chain order.

    With a ``guard``, history is a lane like the others: each chunk is
    checked against the pinned chain before it is yielded, a chunk from a
    chain that moved under it is read again once the stream has followed the
    move, and a reorg below the history's end shortens it (the live lane
    delivers the new branch from the fork on), so the new branch's lower
    events never come after its higher ones.
    """
    position = first
    while position <= min(last, guard.end() if guard is not None else last):
        # One chunk read ahead (of about CHUNK_LOGS logs) while this one is
        # yielded: the node works while Python decodes. Safe now that each
        # chunk is checked against the pinned chain before it is yielded, the
        # one read ahead included, and a chain that moved sends history back.
        chunks = reader.read_ahead(
            position,
            min(last, guard.end() if guard is not None else last),
            topics=_topics(specs),
            progress=progress,
        )
        moved = False
        async with contextlib.aclosing(chunks):
            while True:
                try:
                    chunk_last, logs = await anext(chunks)
                except StopAsyncIteration:
                    break
                except Exception:
                    # The shared stream failed meanwhile (and closed the client the
                    # reader uses): its typed error is the one to report.
                    failed = stream_error()
                    if failed is not None:
                        raise failed from None
                    raise
                if guard is not None and not await guard.on_chain(logs, chunk_last):
                    moved = True
                    break
                end = guard.end() if guard is not None else last
                if end < chunk_last:
                    logs = [raw for raw in logs if int(raw["blockNumber"], 16) <= end]
                async for event in _events(logs, specs, field, scope, remember):
                    yield event
                position = chunk_last + 1
                if guard is not None and position > guard.end() and guard.end() < last:
                    return  # shortened by a reorg: the lane delivers the rest

        if not moved:
            return
        assert guard is not None
        await guard.settle()


def _topics(specs: Sequence[EventSpec]) -> list[object]:
    by_topic = [spec.topic0 for spec in specs]
    return [by_topic] if len(by_topic) > 1 else [by_topic[0]]


async def _events(
    logs: list[RawLog],
    specs: Sequence[EventSpec],
    field: str | None,
    scope: str | None,
    remember: Callable[[list[RawLog]], None],
) -> AsyncGenerator[Any, None]:
    """The decoded events of one chunk's logs that the watcher wants, in chain order."""
    wanted = WatcherMatch(specs, field, scope)
    order = [chain_order(raw) for raw in logs]
    # Nodes answer in chain order: that is checked in one pass, and sorted only if not.
    if not all(map(operator.lt, order, itertools.islice(order, 1, None))):
        logs.sort(key=chain_order)
        order = [chain_order(raw) for raw in logs]
    remember(logs)  # every log read, wanted or not; the lane skips removed and pending ones
    # The reader keeps each chunk to its own range, so a log can only
    # come twice within one answer: that must not make it come out twice.
    yielded: set[tuple[str, int]] = set()
    for turn, (raw, (_, index)) in enumerate(zip(logs, order, strict=True), 1):
        if turn % _LOGS_PER_TURN == 0:
            await asyncio.sleep(0)
        block_hash = raw.get("blockHash")
        if block_hash is None or raw.get("removed"):
            continue
        spec = wanted.spec_of(raw)
        if spec is None:
            continue
        key = (block_hash.lower(), index)
        if key in yielded:
            continue
        yielded.add(key)
        try:
            event = spec.decode(raw)
        except LogDecodeError as exc:  # logged and skipped, as the live path does
            log.warning("skipping a log that does not decode: %s", exc)
            continue
        yield event
