"""One stream per process: many watchers, one filter, one request per tick."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ogpu.events import AttemptedEvent, watch_attempted, watch_task_status_changed
from ogpu.events._devnode.nodes import Anvil
from ogpu.events._stream.hub import Hub, active_hubs
from tests.support.devnodes import random_address, take, wait_joined
from tests.support.fakenode import NEXUS

pytestmark = pytest.mark.anyio


async def _stop(stream: Any, pending: asyncio.Future[Any]) -> None:
    """Stop a watcher that is waiting inside ``__anext__``."""
    pending.cancel()
    await asyncio.gather(pending, return_exceptions=True)
    await stream.aclose()


async def _ticks(hub: Hub, count: int) -> None:
    target = hub.ticks + count
    for _ in range(1000):
        if hub.ticks >= target:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the shared stream stopped ticking")


async def test_200_watchers_cost_the_node_one_request_per_tick(node: Anvil) -> None:
    tasks = [random_address() for _ in range(200)]
    streams = [watch_attempted(task, poll_interval=0.05) for task in tasks]
    firsts = [asyncio.ensure_future(stream.__anext__()) for stream in streams]
    await wait_joined(200)
    [hub] = active_hubs()
    await _ticks(hub, 2)
    requests, ticks = hub.client.requests_sent, hub.ticks
    await _ticks(hub, 10)
    per_tick = (hub.client.requests_sent - requests) / (hub.ticks - ticks)
    assert per_tick <= 1.5, f"{per_tick} HTTP requests per tick with 200 watchers"

    # And each of them still gets its own events, and only those.
    for payment, task in enumerate(tasks[:5]):
        node.emit(NEXUS, "Attempted", task, random_address(), payment)
    got = await asyncio.wait_for(asyncio.gather(*firsts[:5]), 15)
    assert [e.suggested_payment for e in got] == list(range(5))
    assert [e.task.lower() for e in got] == tasks[:5]
    assert not any(f.done() for f in firsts[5:])
    await asyncio.gather(*(_stop(stream, first) for stream, first in zip(streams, firsts, strict=True)))
    assert active_hubs() == []


async def test_watchers_joining_and_leaving_do_not_disturb_the_others(node: Anvil) -> None:
    task = random_address()
    steady = asyncio.create_task(take(watch_attempted(task, poll_interval=0.05), 30, timeout=30))
    await wait_joined()

    async def churn() -> None:
        # Watchers on the same task and on others come and go while events flow.
        for round_ in range(15):
            passerby = watch_attempted(task if round_ % 2 else random_address(), poll_interval=0.02)
            pending = asyncio.ensure_future(passerby.__anext__())
            await asyncio.sleep(0.03)
            await _stop(passerby, pending)

    async def emit() -> None:
        for payment in range(30):
            node.emit(NEXUS, "Attempted", task, random_address(), payment)
            await asyncio.sleep(0.02)

    await asyncio.gather(churn(), emit())
    events = await steady
    assert [e.suggested_payment for e in events] == list(range(30))


async def test_last_watcher_out_uninstalls_the_filter_and_the_next_starts_afresh(node: Anvil) -> None:
    task = random_address()
    first = watch_attempted(task, poll_interval=0.05)
    second = watch_task_status_changed(task, poll_interval=0.05)
    waiting: list[asyncio.Future[Any]] = [asyncio.ensure_future(s.__anext__()) for s in (first, second)]
    await wait_joined(2)
    [hub] = active_hubs()
    filter_id = hub.filter_id
    assert filter_id is not None

    await _stop(first, waiting[0])
    assert hub.filter_id == filter_id, "one watcher left: the filter stays"
    node.emit(NEXUS, "TaskStatusChanged", task, 1)
    assert (await asyncio.wait_for(waiting[1], 10)).status.name == "ATTEMPTED"
    await second.aclose()
    assert active_hubs() == []
    with pytest.raises(RuntimeError, match="filter"):
        node.rpc("eth_getFilterChanges", filter_id)

    again = watch_attempted(task, poll_interval=0.05)
    pending = asyncio.ensure_future(again.__anext__())
    await wait_joined()
    [fresh] = active_hubs()
    assert fresh is not hub and fresh.filter_id not in (None, filter_id)
    node.emit(NEXUS, "Attempted", task, random_address(), 9)
    assert (await asyncio.wait_for(pending, 10)).suggested_payment == 9
    await again.aclose()


async def test_a_late_watcher_with_history_catches_up_then_shares_the_stream(node: Anvil) -> None:
    task = random_address()
    first_block = node.block_number() + 1
    early = asyncio.create_task(take(watch_attempted(task, poll_interval=0.05), 6))
    await wait_joined()
    for payment in range(3):
        node.emit(NEXUS, "Attempted", task, random_address(), payment)
    await asyncio.sleep(0.3)  # the shared stream has delivered these already
    late = asyncio.create_task(take(watch_attempted(task, from_block=first_block, poll_interval=0.05), 6))
    await wait_joined(2)
    for payment in range(3, 6):
        node.emit(NEXUS, "Attempted", task, random_address(), payment)
    early_events, late_events = await asyncio.gather(early, late)
    assert [e.suggested_payment for e in late_events] == list(range(6))
    assert late_events == early_events
    assert len(active_hubs()) <= 1


async def test_a_slow_consumer_keeps_its_backlog_and_does_not_delay_others(
    node: Anvil, caplog: pytest.LogCaptureFixture
) -> None:
    import ogpu.events._stream.lane as lane_module

    task = random_address()
    slow = watch_attempted(task, poll_interval=0.05)
    slow_first = asyncio.ensure_future(slow.__anext__())
    fast = asyncio.create_task(take(watch_attempted(task, poll_interval=0.05), 25))
    await wait_joined(2)
    original = lane_module._FIRST_BACKLOG_WARNING
    lane_module._FIRST_BACKLOG_WARNING = 10
    try:
        for payment in range(25):
            node.emit(NEXUS, "Attempted", task, random_address(), payment)
        fast_events = await fast  # arrives while the slow one has not read anything
    finally:
        lane_module._FIRST_BACKLOG_WARNING = original
    assert [e.suggested_payment for e in fast_events] == list(range(25))
    slow_events: list[Any] = [await asyncio.wait_for(slow_first, 5)]
    slow_events += await take(slow, 24)
    assert slow_events == fast_events
    await slow.aclose()


async def test_the_tick_follows_the_fastest_watcher(node: Anvil) -> None:
    task = random_address()
    sluggish = watch_attempted(task, poll_interval=3600.0)
    sluggish_first = asyncio.ensure_future(sluggish.__anext__())
    await wait_joined()
    brisk = watch_attempted(task, poll_interval=0.05)
    brisk_first = asyncio.ensure_future(brisk.__anext__())
    await wait_joined(2)
    node.emit(NEXUS, "Attempted", task, random_address(), 1)
    # Neither may wait an hour: the shared tick is the shortest interval.
    done = await asyncio.wait_for(asyncio.gather(sluggish_first, brisk_first), 15)
    assert all(isinstance(e, AttemptedEvent) for e in done)
    await asyncio.gather(sluggish.aclose(), brisk.aclose())
