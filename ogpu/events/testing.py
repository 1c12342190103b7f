"""Test code that uses ``ogpu.events`` without a node: an in-memory chain the watchers follow.

``FakeNode`` speaks the JSON-RPC the watchers use, in memory, as an httpx
transport: no socket, no subprocess, no respx (your own tests may use respx
for something else meanwhile). While it is active (``with`` or ``async
with``), ``ChainConfig`` points at it and every watcher talks to it; leaving
the block puts the previous chain and RPC URL back. You mine Nexus events by
the field names of their dataclasses, and break the node the ways real nodes
break, to check that your service survives::

    import asyncio

    from ogpu.events import watch_task_status_changed
    from ogpu.events.testing import FakeNode
    from ogpu.types import TaskStatus

    TASK = "0x" + "ab" * 20

    async def final_status(task: str) -> TaskStatus:
        async for event in watch_task_status_changed(task, poll_interval=0.01):
            if event.status in (TaskStatus.FINALIZED, TaskStatus.CANCELED):
                return event.status
        raise AssertionError("the watcher ended")

    async def test_final_status() -> None:
        async with FakeNode() as node:
            job = asyncio.create_task(final_status(TASK))
            await node.wait_for_watchers()      # watchers yield what is mined after they join
            node.emit("TaskStatusChanged", task=TASK, status=TaskStatus.ATTEMPTED)
            node.lose_filters()                 # the stream recovers, losing nothing
            node.emit("TaskStatusChanged", task=TASK, status=TaskStatus.FINALIZED)
            assert await asyncio.wait_for(job, 5) is TaskStatus.FINALIZED

Each mined block wakes the streams that follow the node, so a watcher sees
an event within a tick or two whatever its ``poll_interval``: a test takes
milliseconds. One process may run several nodes, one after the other or at
once (each has a URL of its own); a node belongs to one thread.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, TypeVar, overload

import httpx

# Modules, not names: this module's public surface is FakeNode alone.
from ogpu import chain as _chain
from ogpu import types as _types
from ogpu.events._fake import logs as _fakelogs
from ogpu.events._fake import rpc as _fakerpc
from ogpu.events._net import rpc as _rpc
from ogpu.events._stream import control as _control

__all__ = ["FakeNode"]

_F = TypeVar("_F", bound="FakeNode")
_E = TypeVar("_E")
_NODE_NUMBERS = itertools.count(1)
# How long ``async with`` waits, on leaving, for the streams to uninstall their filters.
_TEARDOWN_TIMEOUT = 2.0
# Ticks a stream is kept from sleeping after the chain changes (see _chain_moved).
_AWAKE_TICKS = 3


class FakeNode:
    """An in-memory Ethereum node with the Nexus contract's events, for unit tests.

    Args:
        chain: the chain it plays (``ChainId``, chain id or name), whose chain
            id it reports and at whose Nexus address it puts logs; default:
            the current ``ChainConfig`` chain. While active, a chain given
            here is the current one.
        start_block: the head it starts at (blocks 0..start_block, empty).
        url: the URL it answers at; by default one of its own
            (``http://fakenode-N.invalid``), so that a stream left over from
            another node never reaches this one.

    Building the chain: :meth:`emit`, :meth:`emit_many`, :meth:`mine`,
    :meth:`reorg`, :attr:`head`. Faults: :meth:`lose_filters`,
    :meth:`fail_next`, :meth:`lose_next_answer`, :meth:`reorg`,
    :meth:`without_filters`. Waiting: :meth:`wait_for_watchers`. What it was
    asked: :meth:`count` (JSON-RPC calls of one method), ``requests`` (the
    methods of each HTTP request). ``url``, ``chain``, ``chain_id`` and
    ``nexus`` say where it is.

    That is all of it: the in-memory chain and its JSON-RPC front are held
    inside, not inherited, so nothing else is public.
    """

    # The JSON-RPC front it holds; this project's own tests put a subclass
    # with more knobs here (tests/fakenode.py).
    _rpc_type: ClassVar[type[_fakerpc.FakeRpc]] = _fakerpc.FakeRpc

    def __init__(
        self,
        *,
        chain: _chain.ChainId | int | str | None = None,
        start_block: int = 0,
        url: str | None = None,
    ) -> None:
        played = _chain.ChainConfig.get_current_chain() if chain is None else _chain.parse_chain(chain)
        if not isinstance(start_block, int) or isinstance(start_block, bool) or start_block < 0:
            raise _types.InvalidArgumentError(f"start_block must be a block number >= 0, got {start_block!r}")
        self._rpc = self._rpc_type(
            url=f"http://fakenode-{next(_NODE_NUMBERS)}.invalid"
            if url is None
            else _chain.validate_rpc_url(url),
            chain_id=int(played),
            nexus=_chain.ChainConfig.get_contract_address("NEXUS", played),
            start_block=start_block,
        )
        self._played = played
        # A chain asked for is made current while active; otherwise the current one is left alone.
        self._pin_chain = chain is not None
        # Mining wakes the streams that follow this node (see _chain_moved).
        self._wake_streams = True
        self._awake_until: dict[_control.RunningStream, int] = {}
        self._transport: httpx.AsyncBaseTransport = _Transport(self)
        self._saved: _chain.ConfigSnapshot | None = None
        self._rpc.on_change = self._chain_moved

    # --- where it is ---

    @property
    def url(self) -> str:
        """The URL it answers at while active."""
        return self._rpc.url

    @property
    def chain(self) -> _chain.ChainId:
        """The chain it plays."""
        return self._played

    @property
    def chain_id(self) -> int:
        """The chain id it reports (``eth_chainId``)."""
        return self._rpc.chain_id

    @property
    def nexus(self) -> str:
        """The Nexus address of :attr:`chain`, where :meth:`emit` puts the logs."""
        return self._rpc.nexus

    @property
    def head(self) -> int:
        """The number of the newest block."""
        return self._rpc.head

    # --- building the chain ---

    @overload
    def emit(self, event: type[_E], /, **fields: Any) -> _E: ...

    @overload
    def emit(self, event: str, /, **fields: Any) -> Any: ...

    def emit(self, event: str | type[Any], /, **fields: Any) -> Any:
        """Mine one Nexus event in a new block; return it as the watchers will yield it.

        Args:
            event: the event's name in any spelling the watchers accept
                (``"TaskStatusChanged"``, ``"task-status-changed"``, ...) or
                its class (``TaskStatusChangedEvent``).
            **fields: its payload by the dataclass's field names:
                ``task=``, ``status=TaskStatus.FINALIZED``,
                ``suggested_payment=``, ... Addresses in any letter case.

        Raises:
            InvalidArgumentError: an unknown event, a field it lacks or
                misses (``block_number`` and the like are the node's to
                set), or a value the contract could not have logged; nothing
                is mined then.

        The log sits at the Nexus address of :attr:`chain`; the returned
        dataclass equals the one a watcher yields for it. Given the class,
        the result is typed as that class; given a name, it is ``Any`` (one
        of the ``NexusEvent`` dataclasses), so ``emitted.status`` type-checks.
        """
        (mined,) = self.emit_many([(event, fields)])
        return mined

    def emit_many(self, events: Sequence[_fakelogs.EventItem]) -> list[Any]:
        """Mine several events in one new block, in the order given; return them as :meth:`emit` does.

        ``events`` holds ``(event, {field: value, ...})`` pairs, e.g.
        ``[("Attempted", {"task": T, "provider": P, "suggested_payment": 5})]``.
        Every one is checked before the block is mined.
        """
        logs = [
            _fakelogs.encode_fields(name, fields, self.nexus) for name, fields in _pairs(events, "emit_many")
        ]
        return _fakelogs.decoded([self._rpc.mine_block(logs)])

    def reorg(
        self,
        depth: int,
        events: Sequence[_fakelogs.EventItem] | Mapping[int, Sequence[_fakelogs.EventItem]] | None = None,
        *,
        length: int | None = None,
    ) -> list[Any]:
        """Replace the last ``depth`` blocks with a new branch; return the events on it.

        Args:
            depth: how many blocks leave the chain (1 to :attr:`head`).
            events: ``(event, {fields})`` pairs as :meth:`emit_many` takes
                them, all in the new branch's first block; or a dict from an
                offset in the branch (0: the block right above the fork) to
                such pairs. Default: a branch of empty blocks.
            length: blocks in the new branch (default ``depth``).

        Events of the replaced blocks are gone from the chain; a watcher with
        ``confirmations=0`` may already have yielded them (the library logs a
        WARNING naming each), one with more confirmations never does if the
        reorg is shallower.
        """
        if events is None:
            by_offset: Mapping[int, Sequence[_fakelogs.EventItem]] = {}
        elif isinstance(events, Mapping):
            by_offset = events
        else:
            by_offset = {0: events}
        logs = {
            offset: [
                _fakelogs.encode_fields(name, fields, self.nexus) for name, fields in _pairs(items, "reorg")
            ]
            for offset, items in by_offset.items()
        }
        return _fakelogs.decoded(self._rpc.replace_blocks(depth, logs, length))

    def mine(self, count: int = 1) -> int:
        """Mine ``count`` empty blocks; return the new head."""
        return self._rpc.mine(count)

    # --- faults ---

    def lose_filters(self) -> None:
        """Forget every log filter, as a restarted node or another backend behind a load balancer does.

        The stream's next poll gets "filter not found"; it installs a new
        filter and reads the gap with ``eth_getLogs``, losing nothing.
        """
        self._rpc.forget_filters()

    def without_filters(self: _F) -> _F:
        """From now on, have no log filters at all (method not found), like many public endpoints.

        The stream then follows the node with ``eth_getLogs`` every tick.
        Returns the node, so ``with FakeNode().without_filters() as node:`` reads well.
        """
        self._rpc.filters_supported = False
        self._rpc.forget_filters()
        return self

    def fail_next(self, *answers: _fakerpc.HttpFault, status: int | None = None, times: int = 1) -> None:
        """Fail the next ``times`` HTTP requests: with HTTP ``status`` (default 503), or with ``answers``.

        Each of ``answers`` is an ``httpx.Response`` to give, an exception to
        raise as a transport would (``httpx.ConnectError("refused")``), or a
        function of the ``httpx.Request`` returning a response; they are used
        in turn, ``times`` over. The node never sees a request failed this way.
        """
        self._rpc.fail_next(*answers, status=status, times=times)

    def lose_next_answer(self) -> None:
        """Process the next request as usual, then lose the answer on the way back (a read timeout).

        Before the stream's first answer, this is a node that never answers,
        and the watcher raises ``RpcTransportError`` as it would in production.
        """
        self._rpc.lose_next_answer()

    # --- what it was asked ---

    def count(self, method: str) -> int:
        """How many calls of ``method`` the node received (inside batches too)."""
        return self._rpc.count(method)

    @property
    def requests(self) -> list[list[str]]:
        """The JSON-RPC methods of each HTTP request it got, in order (a batch: several)."""
        return self._rpc.requests

    # --- waiting ---

    async def wait_for_watchers(self, count: int = 1, *, timeout: float = 5.0) -> None:
        """Wait until ``count`` watchers follow this node, each far enough along to get what is mined next.

        A watcher started with ``from_block=None`` (the default) yields what
        is mined after it joined: emit its events after this returns.

        Raises:
            TimeoutError: fewer watchers are following after ``timeout``
                seconds (not started, failed, or pointed at another URL).
        """
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise _types.InvalidArgumentError(f"count must be an int >= 1, got {count!r}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (following := self._following()) < count:
            if loop.time() > deadline:
                raise TimeoutError(
                    f"{following} of {count} watchers follow the FakeNode at {self.url} after {timeout} s"
                )
            await asyncio.sleep(0.001)

    def _following(self) -> int:
        return sum(stream.ready_watchers for stream in _control.streams_at(self.url))

    def _chain_moved(self) -> None:
        # A stream sleeping out its poll interval would see the new block
        # only then: wake it, so a test never waits for a clock. One tick is
        # not always enough (a range ends at the lower of the last two heads
        # seen; a lost filter is refilled in the tick after), so it is kept
        # awake for a few more ticks, woken at each request it sends.
        if self._wake_streams:
            for stream in _control.streams_at(self.url):
                self._awake_until[stream] = stream.polls + _AWAKE_TICKS
                stream.wake()

    def _answered(self) -> None:
        """After each request served: keep the streams woken by a change ticking."""
        for stream, until in list(self._awake_until.items()):
            if stream.polls < until:
                stream.wake()
            else:
                del self._awake_until[stream]

    # --- being the node ogpu talks to ---

    def __enter__(self: _F) -> _F:
        if self._saved is not None:
            raise RuntimeError(f"the FakeNode at {self.url} is already active")
        # Whether the chain was set in code at all (rather than by OGPU_CHAIN) is put back too.
        self._saved = _chain.ChainConfig.snapshot()
        _rpc.FAKE_TRANSPORTS[self.url] = self._transport
        if self._pin_chain:
            _chain.ChainConfig.set_chain(self.chain)
        _chain.ChainConfig.set_rpc(self.url, self.chain)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._leave()

    async def __aenter__(self: _F) -> _F:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        tasks = [task for task in self._leave() if task.get_loop() is loop]
        if tasks:
            # Let the stopped streams uninstall their filters and close their clients.
            await asyncio.wait(tasks, timeout=_TEARDOWN_TIMEOUT)

    def _leave(self) -> list[asyncio.Task[None]]:
        """Stop the streams bound to this node and put the configuration back; return their tasks."""
        reason = f"the FakeNode at {self.url} was closed"
        stopped = [stream.stop(reason) for stream in _control.streams_at(self.url)]
        self._awake_until.clear()
        _rpc.FAKE_TRANSPORTS.pop(self.url, None)
        if self._saved is not None:
            _chain.ChainConfig.restore(self._saved)
            self._saved = None
        return [task for task in stopped if task is not None]


class _Transport(httpx.AsyncBaseTransport):
    """Hands each request to the node in memory; the stream's httpx client uses it instead of a socket."""

    def __init__(self, node: FakeNode) -> None:
        self._node = node

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        # Real I/O lets other tasks run: a stream looping over requests must stay cancellable.
        await asyncio.sleep(0)
        try:
            return self._node._rpc(request)
        finally:
            self._node._answered()


def _pairs(items: Sequence[_fakelogs.EventItem], caller: str) -> list[_fakelogs.EventItem]:
    """``items`` checked to be ``(event, {fields})`` pairs, so a mistake names what was wrong."""
    if isinstance(items, str | Mapping) or not isinstance(items, Sequence):
        raise _types.InvalidArgumentError(
            f"{caller}() takes a list of (event, {{fields}}) pairs, got {items!r}"
        )
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Mapping)):
            raise _types.InvalidArgumentError(f"{caller}() takes (event, {{fields}}) pairs, got {item!r}")
    return list(items)
