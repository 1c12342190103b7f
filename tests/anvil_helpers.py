"""Small helpers for tests that drive watchers against anvil."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from ogpu.events._hub import active_hubs

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
