"""Helpers for tests that run watchers: waiting, collecting what they yield, holding a request.

One definition of each, for the in-memory node (``tests.support.fakenode``)
and the development nodes alike. The in-memory helpers at the end
(``attempted``, ``sentinel``, ``block_of_ten``...) mine on a ``FakeNode``.

Streaming tests end with a sentinel event mined last: a watcher has seen
everything before it once the sentinel arrives, so "exactly these events,
in this order" can be asserted without waiting for time to pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncGenerator, Callable
from typing import Any, Generic, TypeVar

import httpx
import pytest

from ogpu.events import (
    watch_attempted,
    watch_registered,
    watch_response_status_changed,
    watch_response_submitted,
    watch_task_published,
    watch_task_status_changed,
)
from ogpu.events._stream.hub import Hub, active_hubs
from tests.support.fakenode import FakeNode

T = TypeVar("T")

Watcher = Callable[..., AsyncGenerator[Any, None]]
WATCHERS: dict[str, Watcher] = {
    "watch_task_published": watch_task_published,
    "watch_attempted": watch_attempted,
    "watch_response_submitted": watch_response_submitted,
    "watch_response_status_changed": watch_response_status_changed,
    "watch_task_status_changed": watch_task_status_changed,
    "watch_registered": watch_registered,
}
FAST = 0.01  # the poll interval of tests on the in-memory node
SENTINEL = 2**256 - 1  # the suggested payment of the last Attempted event a test mines

rng = random.Random(1071)


def address() -> str:
    """A fresh address (seeded: the same run after run)."""
    return "0x" + rng.randbytes(20).hex()


TASK = address()


def ogpu_tasks() -> list[asyncio.Task[Any]]:
    """The tasks of this library still running in this loop."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("ogpu")]


async def wait_until(condition: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    """Let the event loop run until ``condition()`` holds; fail the test naming ``what`` if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # Polled, not awaited on an event: the conditions are about the node and the stream.
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {what}")
        await asyncio.sleep(0.002)


class Collector(Generic[T]):
    """Runs a watcher in a task of its own and keeps what it yields, so a test can act meanwhile."""

    def __init__(self, gen: AsyncGenerator[T, None]) -> None:
        self.events: list[T] = []
        self._gen = gen
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async with contextlib.aclosing(self._gen):
            async for event in self._gen:
                self.events.append(event)

    def ids(self) -> list[tuple[int, int]]:
        """Where on chain each event yielded so far is: (block, log index)."""
        events: list[Any] = list(self.events)
        return [(e.block_number, e.log_index) for e in events]

    async def until(self, done: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        """Wait until ``done()``; the watcher's error if it failed, a failure if it ended."""

        def check() -> bool:
            if self.task.done():
                self.task.result()  # raises what the watcher raised
                raise AssertionError(f"the watcher stopped after {len(self.events)} events")
            return done()

        await wait_until(check, what, timeout)

    async def until_sentinel(self) -> None:
        await self.until(
            lambda: any(getattr(e, "suggested_payment", None) == SENTINEL for e in self.events),
            "the sentinel event",
        )

    async def until_payments(self, wanted: list[int]) -> None:
        """Wait until the first suggested payments seen are ``wanted``."""
        await self.until(lambda: payments(self)[: len(wanted)] == wanted, f"payments {wanted}")

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[T]:
        """The events so far, once there are at least ``count``."""
        await self.until(
            lambda: len(self.events) >= count, f"{count} events (got {len(self.events)})", timeout
        )
        return list(self.events)

    async def stop(self) -> None:
        """Cancel the task and close the watcher (also one whose task never started)."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self._gen.aclose()


def payments(c: Collector[Any]) -> list[int]:
    """The suggested payments of the Attempted events ``c`` has seen."""
    return [e.suggested_payment for e in c.events if hasattr(e, "suggested_payment")]


_started: list[Collector[Any]] = []


def start(gen: AsyncGenerator[Any, None]) -> Collector[Any]:
    """Run a watcher in a task that is stopped when the test ends, even if it fails.

    For modules using the ``stop_started_watchers`` fixture (``tests/stream/conftest.py``).
    """
    c = Collector(gen)
    _started.append(c)
    return c


async def stop_started() -> None:
    """Stop what ``start`` started, except a watcher that failed (its test has looked at how)."""
    while _started:
        c = _started.pop()
        if c.task.done() and not c.task.cancelled() and c.task.exception() is not None:
            continue
        await c.stop()


def warned(caplog: pytest.LogCaptureFixture, *words: str) -> bool:
    """A WARNING (or worse) on ``ogpu.events`` whose message has all of ``words`` (any case)."""
    return any(
        r.levelno >= logging.WARNING
        and r.name.startswith("ogpu.events")
        and all(w.lower() in r.getMessage().lower() for w in words)
        for r in caplog.records
    )


class Gate:
    """Serves ``node``, except that it can hold the next request calling ``method`` until opened."""

    def __init__(self, node: FakeNode) -> None:
        self.node = node
        self._method: str | None = None
        self._answer: Callable[[httpx.Request], httpx.Response] | None = None
        self.held = asyncio.Event()
        self._open = asyncio.Event()

    def hold(self, method: str, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        """Hold the next request with ``method`` in it; then answer it with ``answer`` (or the node)."""
        self._method, self._answer = method, answer
        self.held.clear()
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        methods = [item.get("method") for item in (body if isinstance(body, list) else [body])]
        if self._method is not None and self._method in methods:
            self._method = None
            answer = self._answer or self.node
            self.held.set()
            await self._open.wait()
            self._open.clear()
            return answer(request)
        # Every request lets the event loop run, as real I/O does: a stream
        # that loops over requests forever must still be cancellable.
        await asyncio.sleep(0)
        return self.node(request)


# --- the stream on the in-memory node ---


async def streaming(watchers: int = 1) -> Hub:
    """Wait until ``watchers`` watchers have joined the stream and it has polled since."""

    def joined() -> bool:
        hubs = active_hubs()
        return len(hubs) == 1 and hubs[0].subscriber_count == watchers and hubs[0].ticks >= 1

    await wait_until(joined, f"{watchers} watcher(s) on the stream")
    hub = active_hubs()[0]
    await ticks(hub)
    return hub


def the_hub() -> Hub:
    """The one stream of this loop."""
    (hub,) = active_hubs()
    return hub


async def heads(node: FakeNode, count: int = 1) -> None:
    """Wait until the stream has asked for the head ``count`` more times (a few polls)."""
    before = node.head_answers
    await wait_until(lambda: node.head_answers >= before + count, f"{count} more head answer(s)")


async def ticks(hub: Hub, count: int = 1) -> None:
    start = hub.ticks
    await wait_until(lambda: hub.ticks >= start + count, f"{count} more poll(s)")


async def all_gone(node: FakeNode) -> None:
    """Nothing of the stream is left: no hub, no poll task, no filter on the node."""
    await wait_until(lambda: not active_hubs() and not ogpu_tasks(), "the stream to shut down")
    assert node.filters == {}
    installed = node.count("eth_newFilter") - sum(1 for m, _, _ in node.errors if m == "eth_newFilter")
    assert node.count("eth_uninstallFilter") >= installed


def prove_filter(node: FakeNode) -> None:
    """Mine a block with a Nexus log nobody watches: the filter that reports it is proven.

    Until a filter reports a log, the stream cannot tell which block it was
    created at, and reads each new block by eth_getLogs as well.
    """
    attempted(node, address(), 0)
    node.mine()


def attempted(node: FakeNode, task: str, amount: int) -> None:
    node.add_log("Attempted", task, address(), amount)


def sentinel(node: FakeNode, task: str = TASK) -> None:
    attempted(node, task, SENTINEL)
    node.mine()


def block_of_ten(node: FakeNode, task: str) -> int:
    """Mine one block holding ten Attempted events of ``task`` (payments 1..10) among other logs."""
    node.mine(3)
    for payment in range(1, 11):
        node.add_log("Attempted", task, address(), payment)
        if payment % 3 == 0:
            node.add_log("Attempted", address(), address(), 1000 + payment)  # another task
    return node.mine()


async def first_events(gen: AsyncGenerator[Any, None], count: int) -> list[Any]:
    """The first ``count`` events of ``gen``, which is closed then."""
    taken: list[Any] = []
    async for event in gen:
        taken.append(event)
        if len(taken) == count:
            break
    await gen.aclose()
    return taken
