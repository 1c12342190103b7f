"""The simulation's node: the project's in-memory node with a network in front of it and more faults.

``SimNode`` is ``tests.fakenode.FakeNode`` (so everything the unit tests
trust about it holds) plus what a simulation needs and a unit test does not:

* a transport of its own with a simulated network latency on the way in and
  on the way out (virtual time, drawn from the seed's generator), so that
  requests, mining and watchers joining interleave differently per seed;
* a transcript of every HTTP request body it received, with the virtual
  time, for the determinism check;
* faults the stream claims to survive that the node front has no knob for:
  ``null`` block headers, a ``null`` ``eth_getLogs`` answer, a foreign or
  out-of-range log slipped into an ``eth_getLogs`` answer, side blocks whose
  headers are kept but whose logs by hash are "unknown block" (geth), and
  one-shot hooks that change the chain right after the node has answered a
  given method (a reorg between two history chunks, between the ``after=``
  hash check and the join, a head lagging just as a filter is installed);
* the filters created by requests whose answers were lost, which the stream
  cannot know of and so cannot be blamed for leaving installed;
* when each orphaned block left the chain (virtual time), for the oracle.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from ogpu.events._codec.abi import RawLog
from tests.fakenode import FakeNode, ProjectRpc, RpcFault

__all__ = ["Hook", "SimNode", "SimRpc"]

# (which request triggers it, what to do to the node, a name for the log of faults);
# the predicate gets the request's calls (JSON-RPC objects) and whether it was a batch.
Hook = tuple[Callable[[list[dict[str, Any]], bool], bool], Callable[[], None], str]


class SimRpc(ProjectRpc):
    """The JSON-RPC front inside ``SimNode``: the simulation's extra faults and records."""

    def __init__(self, *, url: str, chain_id: int, nexus: str, start_block: int = 0) -> None:
        super().__init__(url=url, chain_id=chain_id, nexus=nexus, start_block=start_block)
        # The seed's network generator and the virtual clock: SimNode sets both.
        self._net_rng = random.Random()
        self._clock: Callable[[], float] = lambda: 0.0
        self.transcript: list[bytes] = []
        self.latency = (0.001, 0.05)  # seconds each way, uniform
        self.null_headers = 0  # the next N eth_getBlockByNumber answers are null
        self.null_blocks: set[str] = set()  # block numbers (hex) whose next header answer is null
        self.null_get_logs = 0  # the next N eth_getLogs answers are null
        self.orphan_logs_unknown = False  # side block headers kept, their logs by hash "unknown block"
        self.get_logs_injected: list[RawLog] = []  # slipped into the next eth_getLogs answer
        self.hooks: deque[Hook] = deque()
        self.echo = False  # print each fault as it fires
        self.fired: list[tuple[float, str]] = []  # (virtual time, fault) for the replay log
        self.orphaned_at: dict[str, float] = {}  # block hash -> when it left the chain
        self.lost_filters: set[str] = set()  # created by requests whose answers were lost

    # --- what happened ---

    def note(self, fault: str) -> None:
        self.fired.append((self._clock(), fault))
        if self.echo:
            print(f"  t={self._clock():9.3f} SIM     {fault}")

    def digest(self) -> str:
        """sha256 of the transcript: every request body, in arrival order, with its virtual time."""
        return hashlib.sha256(b"\n".join(self.transcript)).hexdigest()

    # --- chain changes that remember when blocks left ---

    def replace_blocks(self, depth: int, logs_by_offset: Any, length: int | None = None) -> Any:
        before = set(self.orphans)
        new = super().replace_blocks(depth, logs_by_offset, length)
        self._stamp(before)
        return new

    def restart(self, chain_id: int | None = None, *, same_genesis: bool = False) -> None:
        before = set(self.orphans)
        super().restart(chain_id, same_genesis=same_genesis)
        self._stamp(before)

    def _stamp(self, before: set[str]) -> None:
        now = self._clock()
        for block_hash in self.orphans:
            if block_hash not in before:
                self.orphaned_at[block_hash] = now

    def calm(self) -> None:
        super().calm()
        self.null_headers = 0
        self.null_blocks.clear()
        self.null_get_logs = 0
        self.get_logs_injected.clear()
        self.hooks.clear()
        self.http_override = None

    # --- serving ---

    def served_and_lost(self, request: httpx.Request) -> None:
        """Serve ``request`` whose answer will never arrive; remember the filters it created."""
        before = len(self.created_filters)
        self._serve(json.loads(request.content))
        self.lost_filters.update(self.created_filters[before:])

    def _serve(self, body: Any) -> httpx.Response:
        answer = super()._serve(body)
        if self.hooks:
            items = [item for item in (body if isinstance(body, list) else [body]) if isinstance(item, dict)]
            # A hook fires after the answer is made: the chain changes between
            # this request and the next one, whoever sends it.
            for hook in list(self.hooks):
                wants, action, name = hook
                if wants(items, isinstance(body, list)):
                    self.hooks.remove(hook)
                    methods = "+".join(str(item.get("method")) for item in items)
                    self.note(f"{name}, right after a request of {methods}")
                    action()
                    break
        return answer

    def _get_block(self, params: list[Any]) -> dict[str, Any] | None:
        if params and params[0] in self.null_blocks:
            self.null_blocks.discard(params[0])
            return None
        if self.null_headers > 0:
            self.null_headers -= 1
            if params and params[0] in ("latest", "pending"):
                self.head_answers += 1  # a head answer all the same, for whoever counts them
            return None
        return super()._get_block(params)

    def _get_logs(self, params: list[Any]) -> Any:
        query = params[0] if params else {}
        if self.null_get_logs > 0:
            self.null_get_logs -= 1
            return None
        if self.orphan_logs_unknown and "blockHash" in query:
            wanted = str(query["blockHash"]).lower()
            if all(block.hash != wanted for block in self.blocks):
                raise RpcFault(-32000, "unknown block")
        found: list[RawLog] = super()._get_logs(params)
        if self.get_logs_injected and "blockHash" not in query:
            found = [*found, *self.get_logs_injected]
            self.get_logs_injected = []
        return found


class SimNode(FakeNode):
    """``tests.fakenode.FakeNode`` behind a simulated network, with the simulation's extra faults."""

    _rpc_type = SimRpc

    def __init__(self, rng: random.Random, clock: Callable[[], float], **knobs: Any) -> None:
        super().__init__(**knobs)
        # Streams follow their own poll clock: waking them on every block
        # would hide the interleavings of a real node, and costs nothing to skip.
        self._wake_streams = False
        self._transport = _SimTransport(self)
        sim = self._rpc
        assert isinstance(sim, SimRpc)
        sim._net_rng = rng
        sim._clock = clock


class _SimTransport(httpx.AsyncBaseTransport):
    """The network between the stream and the node: a latency each way, in virtual time."""

    def __init__(self, node: SimNode) -> None:
        self._sim = node

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        node = self._sim
        body = await request.aread()
        await asyncio.sleep(node._net_rng.uniform(*node.latency))
        node.transcript.append(f"{node._clock():.6f} ".encode() + body)
        try:
            response = node(request)
        except httpx.TimeoutException:
            # A read timeout is noticed only once the client has waited for it.
            await asyncio.sleep(node._net_rng.uniform(1.0, 10.0))
            raise
        except Exception:
            await asyncio.sleep(node._net_rng.uniform(*node.latency))
            raise
        await asyncio.sleep(node._net_rng.uniform(*node.latency))
        return response
