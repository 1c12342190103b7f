"""Small helpers for tests that drive watchers against a development node (see also ``streams``)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from ogpu.events._codec.address import checksum_address
from ogpu.events._devnode.nodes import Anvil, DevNode, event_calldata
from ogpu.events._stream.hub import active_hubs
from tests.support.fakenode import NEXUS

T = TypeVar("T")


def random_address() -> str:
    return "0x" + secrets.token_hex(20)


def checksummed(address: str) -> str:
    return checksum_address(address[2:].lower())


def send(node: Anvil, event: str, *values: Any) -> str:
    """Emit through the Nexus emitter with gas estimated by the node; the transaction's hash.

    ``Anvil.emit`` sends a fixed gas limit, too small for a SourceUpdated
    log carrying kilobytes of strings.
    """
    tx = str(
        node.rpc(
            "eth_sendTransaction", {"from": node.account, "to": NEXUS, "data": event_calldata(event, *values)}
        )
    )
    give_up = time.monotonic() + 5.0
    while (receipt := node.rpc("eth_getTransactionReceipt", tx)) is None and time.monotonic() < give_up:
        time.sleep(0.01)  # anvil may answer before the block is sealed
    assert receipt is not None and receipt["status"] == "0x1", f"{event} transaction failed: {receipt}"
    return tx


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
                sub.joined_at is not None for lane in lanes for sub in lane.subscriptions()
            ):
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(joined(), timeout)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Block until ``condition()`` holds; fail the test naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


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
