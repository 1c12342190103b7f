"""Small helpers for tests that drive watchers against a development node."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Generic, TypeVar

from ogpu.events._devnode.nodes import DevNode
from ogpu.events._stream.hub import active_hubs

T = TypeVar("T")


def random_address() -> str:
    return "0x" + secrets.token_hex(20)


async def take(stream: AsyncIterator[T], count: int, timeout: float = 15.0) -> list[T]:
    """The first ``count`` items of ``stream``; fails the test instead of hanging."""

    async def collect() -> list[T]:
        items: list[T] = []
        async for item in stream:
            items.append(item)
            if len(items) == count:
                break
        return items

    return await asyncio.wait_for(collect(), timeout)


async def wait_joined(watchers: int = 1, timeout: float = 10.0) -> None:
    """Wait until ``watchers`` subscriptions sit on ready lanes of this loop's hubs."""

    async def joined() -> None:
        while True:
            lanes = [lane for hub in active_hubs() for lane in hub.lanes.values()]
            ready = sum(lane.size for lane in lanes if lane.ready.is_set())
            if ready >= watchers and all(
                sub.join_cursor is not None for lane in lanes for sub in lane.subscriptions()
            ):
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(joined(), timeout)


def ogpu_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("ogpu.events")]


async def wait_until(condition: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    """Wait until ``condition()`` is true; fails the test naming ``what`` instead of hanging."""

    async def poll() -> None:
        # Polled, not awaited on an event: the conditions are about the node and the hub.
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


class Collector(Generic[T]):
    """Drains ``stream`` in a task of its own, so a test can act while events arrive."""

    def __init__(self, stream: AsyncGenerator[T, None]) -> None:
        self.items: list[T] = []
        self._stream = stream
        self._task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        async for item in self._stream:
            self.items.append(item)

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[T]:
        """The items so far, once there are at least ``count``; the stream's error if it failed."""

        def enough() -> bool:
            if self._task.done():
                self._task.result()  # raises the stream's error; a finished stream is a failure too
                raise AssertionError(f"the stream ended after {len(self.items)} items")
            return len(self.items) >= count

        await wait_until(enough, f"{count} items (got {len(self.items)} so far)", timeout)
        return list(self.items)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._stream.aclose()


class Emitter:
    """Emits ``Attempted`` events of ``task`` one after another in a thread, until stopped.

    ``count`` is how many it emitted (each event's payment is its number).
    """

    def __init__(self, node: DevNode, nexus: str, task: str, provider: str, interval: float) -> None:
        self.node, self.nexus, self.task, self.provider, self.interval = node, nexus, task, provider, interval
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.node.emit(self.nexus, "Attempted", self.task, self.provider, self.count)
            self.count += 1
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(10)
        return self.count
