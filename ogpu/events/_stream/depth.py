"""Lanes that follow the chain with ``eth_getLogs``: confirmation depths, and a node without filters.

Each range is read in chunks, and a chunk moves a lane's cursor only once
block headers, asked for in one batch, show its last block exists and the
blocks its logs come from still have the hashes the logs say.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from ogpu._errors import RpcError
from ogpu.events._codec.abi import RawLog
from ogpu.events._net.ranges import LogRangeReader
from ogpu.events._net.rpc import JsonRpc
from ogpu.events._stream.chain import ChainView, maybe_header
from ogpu.events._stream.lane import Lane
from ogpu.events._stream.screen import first_contradicted

__all__ = ["RangeFollower"]

log = logging.getLogger("ogpu.events")

# How often a confirmed range is read again when its blocks keep changing.
_REORG_REREADS = 5


class RangeFollower:
    """Moves lanes forward over ranges read with ``eth_getLogs`` and checked by headers."""

    def __init__(
        self,
        client: JsonRpc,
        reader: LogRangeReader,
        chain: ChainView,
        deliver: Callable[[Lane, list[RawLog]], object],
    ) -> None:
        self._client = client
        self._reader = reader
        self._chain = chain
        self._deliver = deliver

    async def follow(self, lane: Lane, target: int) -> None:
        """Read ``eth_getLogs`` from the lane's cursor up to ``target``, each chunk checked by headers."""
        if lane.cursor is None:
            lane.start(max(target, 0), self._chain.head if self._chain.head is not None else target)
            return
        if target <= lane.cursor:
            return
        first = lane.cursor + 1
        async with contextlib.aclosing(self._reader.read(first, target)) as chunks:
            async for end, logs in chunks:
                confirmed = await self._confirmed(logs, first, end)
                if confirmed is None:
                    return  # the node does not have ``end`` yet: the next tick goes on from here
                moved = first_contradicted(self._chain, confirmed)
                if moved is not None:
                    # Served by a chain that moved under the stream: only what
                    # lies below it counts; the tick's reorg check follows the move.
                    confirmed = [raw for raw in confirmed if int(raw["blockNumber"], 16) < moved]
                    end = moved - 1
                    if end < first:
                        return
                self._deliver(lane, confirmed)
                lane.covered(first, end)
                lane.advance(end)
                if moved is not None:
                    return
                first = end + 1

    async def _confirmed(self, logs: list[RawLog], first: int, last: int) -> list[RawLog] | None:
        """``logs`` of ``first..last`` once headers show them on the chain; ``None`` if ``last`` is not.

        A lane that moves its cursor over a block must know the block exists:
        a head from a backend ahead, or a glitch, can name a block the node
        that answered ``eth_getLogs`` has not got, and an empty answer for it
        says nothing. So the range's last block is asked for beside the
        blocks the logs come from, whose hashes must not have changed.
        """
        for _ in range(_REORG_REREADS):
            hashes: dict[int, set[str]] = {}
            for raw in logs:
                if raw.get("blockHash") is not None and not raw.get("removed"):
                    hashes.setdefault(int(raw["blockNumber"], 16), set()).add(raw["blockHash"].lower())
            # The block below the range too: a chain that moved under the range
            # (a reorg or a replaced chain the stream has not followed yet)
            # would hand over its higher blocks before its lower ones.
            below = first - 1 if first > 0 else None
            numbers = sorted({*hashes, last, *([below] if below is not None else [])})
            answers = await self._client.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
            headers = {n: maybe_header(a, hex(n)) for n, a in zip(numbers, answers, strict=True)}
            end = headers[last]
            if end is None:
                return None
            if below is not None and not self._chain.holds(below, headers[below]):
                return None  # the next tick finds where the chains part, and reads from there
            pinned = self._chain.pinned(last)
            changed = [
                n
                for n in numbers
                if (header := headers[n]) is None
                or (n in hashes and {header.hash} != hashes[n])
                or (n == last and pinned is not None and pinned != header.hash)
            ]
            if not changed:
                return logs
            log.warning(
                "blocks %s changed since their logs were read (reorg); reading %d..%d again",
                changed,
                first,
                last,
            )
            logs = [raw async for _, chunk in self._reader.read(first, last) for raw in chunk]
        raise RpcError(
            f"blocks {first}..{last} kept changing while being confirmed",
            url=self._client.masked_url,
        )
