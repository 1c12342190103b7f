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
from ogpu.events._net.headers import header_calls, headers_by_number
from ogpu.events._net.ranges import LogRangeReader
from ogpu.events._net.rpc import JsonRpc
from ogpu.events._stream.chain import ChainView
from ogpu.events._stream.lane import Lane
from ogpu.events._stream.screen import uncontradicted

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
        # (lane depth, block) of breaks already warned of: a break is told once, not every tick.
        self._breaks_told: set[tuple[int, int]] = set()

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
                checked = await self._confirmed(lane, logs, first, end)
                if checked is None:
                    return  # the node does not have ``end`` yet: the next tick goes on from here
                confirmed, end_hash = checked
                last = end
                # A chunk served by a chain that moved under the stream counts
                # only below the move; the tick's reorg check follows the move.
                confirmed, end, moved = uncontradicted(self._chain, confirmed, end)
                if end < first:
                    return
                self._deliver(lane, confirmed)
                lane.covered(first, end, end_hash if end == last else None)
                lane.advance(end)
                if moved is not None:
                    return
                first = end + 1

    async def _confirmed(
        self, lane: Lane, logs: list[RawLog], first: int, last: int
    ) -> tuple[list[RawLog], str] | None:
        """``logs`` of ``first..last`` and block ``last``'s hash, once headers show them on the chain
        the lane's reads stand on; ``None`` if ``last`` is not there yet, or the chain moved below.

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
            headers = headers_by_number(numbers, await self._client.batch(header_calls(numbers)))
            end = headers[last]
            if end is None:
                return None
            if below is not None and not self._chain.holds(below, headers[below]):
                return None  # the next tick finds where the chains part, and reads from there
            under = headers[below] if below is not None else None
            if below is not None and under is not None and not lane.continues(below, under.hash):
                # No pin there for the chain view to see the move by: wait for
                # the stream's reorg check to find it, and say so once.
                if (lane.confirmations, below) not in self._breaks_told:
                    self._breaks_told.add((lane.confirmations, below))
                    log.warning(
                        "block %d is not the one the reads at %d confirmation(s) reached (the node's chain "
                        "moved?); reading on once the stream has followed the move",
                        below,
                        lane.confirmations,
                    )
                return None
            pinned = self._chain.pinned(last)
            changed = [
                n
                for n in numbers
                if (header := headers[n]) is None
                or (n in hashes and {header.hash} != hashes[n])
                or (n == last and pinned is not None and pinned != header.hash)
            ]
            if not changed:
                return logs, end.hash
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
