"""The six watchers against a real node: typed events, history, ordering, cleanup."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ogpu.events import (
    AttemptedEvent,
    RegisteredEvent,
    ResponseStatusChangedEvent,
    ResponseSubmittedEvent,
    TaskPublishedEvent,
    TaskStatusChangedEvent,
    watch_attempted,
    watch_registered,
    watch_response_status_changed,
    watch_response_submitted,
    watch_task_published,
    watch_task_status_changed,
)
from ogpu.events._codec.abi import EVENTS
from ogpu.events._devnode.nodes import Anvil
from ogpu.events._stream.hub import active_hubs
from ogpu.types import Environment, TaskStatus
from tests.support.devnodes import random_address, take, wait_joined
from tests.support.fakenode import NEXUS
from tests.support.streams import ogpu_tasks

pytestmark = pytest.mark.anyio

SCOPE = random_address()
OTHER = random_address()

# watcher, event, values with SCOPE in the scoping position, the event it should yield
CASES: list[tuple[Callable[..., Any], str, tuple[Any, ...], Any]] = [
    (watch_task_published, "TaskPublished", (OTHER, SCOPE), TaskPublishedEvent),
    (watch_attempted, "Attempted", (SCOPE, OTHER, 2**256 - 1), AttemptedEvent),
    (watch_response_submitted, "ResponseSubmitted", (OTHER, SCOPE), ResponseSubmittedEvent),
    (watch_response_status_changed, "ResponseStatusChanged", (SCOPE, 1), ResponseStatusChangedEvent),
    (watch_task_status_changed, "TaskStatusChanged", (SCOPE, 5), TaskStatusChangedEvent),
    (watch_registered, "Registered", (OTHER, 7, SCOPE, 3), RegisteredEvent),
]


@pytest.mark.parametrize(("watcher", "event", "values", "cls"), CASES, ids=[c[1] for c in CASES])
async def test_each_watcher_yields_its_typed_event_from_real_logs(
    node: Anvil, watcher: Callable[..., Any], event: str, values: tuple[Any, ...], cls: type[Any]
) -> None:
    start = node.block_number() + 1
    stream = watcher(SCOPE.upper().replace("0X", "0x"), from_block=start, poll_interval=0.05)
    unrelated = tuple(OTHER if v == SCOPE else v for v in values)
    node.emit(NEXUS, event, *unrelated)  # same event, another scope: must not show up
    tx = node.emit(NEXUS, event, *values)
    [got] = await take(stream, 1)
    await stream.aclose()

    assert type(got) is cls
    assert got.transaction_hash == tx.lower()
    receipt = node.rpc("eth_getTransactionReceipt", tx)
    assert got.block_number == int(receipt["blockNumber"], 16)
    assert got.block_hash == receipt["blockHash"]
    assert got.log_index == int(receipt["logs"][0]["logIndex"], 16)
    payload = [getattr(got, name) for name in EVENTS[event].field_names]  # in ABI order
    expected = [v.lower() if isinstance(v, str) else v for v in values]
    assert [p.lower() if isinstance(p, str) else p for p in payload] == expected
    for value in payload:
        if isinstance(value, str):
            assert value != value.lower(), "addresses are EIP-55 checksummed"


async def test_statuses_and_environment_are_typed(node: Anvil) -> None:
    task, source = random_address(), random_address()
    start = node.block_number() + 1
    node.emit(NEXUS, "TaskStatusChanged", task, 3)
    node.emit(NEXUS, "Registered", random_address(), 1, source, 6)
    [status] = await take(watch_task_status_changed(task, from_block=start, poll_interval=0.05), 1)
    [registered] = await take(watch_registered(source, from_block=start, poll_interval=0.05), 1)
    assert status.status is TaskStatus.CANCELED
    assert registered.preferred_environment == Environment.NVIDIA | Environment.AMD
    assert isinstance(registered.preferred_environment, Environment)


async def test_history_then_live_without_gap_or_repeat(node: Anvil) -> None:
    task = random_address()
    first = node.block_number() + 1
    for payment in range(5):
        node.emit(NEXUS, "Attempted", task, random_address(), payment)
    stream = watch_attempted(task, from_block=first, poll_interval=0.05)
    collector = asyncio.create_task(take(stream, 10))
    await wait_joined()
    for payment in range(5, 10):
        node.emit(NEXUS, "Attempted", task, random_address(), payment)
    events = await collector
    assert [e.suggested_payment for e in events] == list(range(10))
    assert len({(e.block_hash, e.log_index) for e in events}) == 10


async def test_from_block_none_skips_what_was_mined_before(node: Anvil) -> None:
    task = random_address()
    node.emit(NEXUS, "Attempted", task, random_address(), 1)
    stream = watch_attempted(task, poll_interval=0.05)
    collector = asyncio.create_task(take(stream, 1))
    await wait_joined()
    node.emit(NEXUS, "Attempted", task, random_address(), 2)
    [event] = await collector
    assert event.suggested_payment == 2


async def test_many_events_in_one_block_keep_their_order(anvil: Anvil) -> None:
    from ogpu import ChainConfig

    ChainConfig.set_rpc(anvil.url)
    task = random_address()
    live = watch_attempted(task, poll_interval=0.05)
    collector = asyncio.create_task(take(live, 20))
    await wait_joined()
    anvil.set_automine(False)
    try:
        for payment in range(40):
            # Every other log belongs to another task: the watcher must skip them.
            anvil.emit(
                NEXUS, "Attempted", task if payment % 2 == 0 else random_address(), random_address(), payment
            )
        anvil.mine(1)
    finally:
        anvil.set_automine(True)
    events = await collector
    assert {e.block_number for e in events} == {anvil.block_number()}
    assert [e.suggested_payment for e in events] == list(range(0, 40, 2))
    assert [e.log_index for e in events] == sorted(e.log_index for e in events)
    history = await take(watch_attempted(task, from_block=events[0].block_number, poll_interval=0.05), 20)
    assert history == events


async def _filter_ids() -> list[str]:
    return [hub.filter_id for hub in active_hubs() if hub.filter_id is not None]


def _filter_exists(node: Anvil, filter_id: str) -> bool:
    try:
        node.rpc("eth_getFilterChanges", filter_id)
    except RuntimeError as exc:
        assert "filter" in str(exc).lower()
        return False
    return True


async def _started(node: Anvil, task: str) -> tuple[Any, str]:
    stream = watch_attempted(task, poll_interval=0.05)
    first = asyncio.ensure_future(stream.__anext__())
    await wait_joined()
    [filter_id] = await _filter_ids()
    assert _filter_exists(node, filter_id)
    node.emit(NEXUS, "Attempted", task, random_address(), 1)
    await asyncio.wait_for(first, 10)
    return stream, filter_id


async def _settled() -> None:
    for _ in range(50):
        if not ogpu_tasks() and not active_hubs():
            return
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("how", ["break", "aclose", "wait_for", "cancel"])
async def test_leaving_the_loop_uninstalls_the_filter_and_stops_polling(node: Anvil, how: str) -> None:
    task = random_address()
    if how == "break":
        stream, filter_id = await _started(node, task)
        node.emit(NEXUS, "Attempted", task, random_address(), 2)
        async for _ in stream:
            break
        del stream  # as when the loop's variable goes out of scope
    elif how == "aclose":
        stream, filter_id = await _started(node, task)
        await stream.aclose()
    else:

        async def forever() -> None:
            async for _ in watch_attempted(task, poll_interval=0.05):
                pass

        runner = asyncio.create_task(forever())
        await wait_joined()
        [filter_id] = await _filter_ids()
        if how == "wait_for":
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(runner), 0.2)
            runner.cancel()
        else:
            runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    await _settled()
    assert ogpu_tasks() == []
    assert active_hubs() == []
    assert not _filter_exists(node, filter_id)


def test_each_asyncio_run_gets_a_working_stream(node: Anvil) -> None:
    """The guide's "Mixing sync and async": asyncio.run more than once in a process."""
    task = random_address()

    async def first_attempt_after_start() -> AttemptedEvent:
        stream = watch_attempted(task, poll_interval=0.05)
        pending = asyncio.ensure_future(stream.__anext__())
        await wait_joined()
        node.emit(NEXUS, "Attempted", task, random_address(), 42)
        event = await asyncio.wait_for(pending, 10)
        await stream.aclose()
        return event

    first = asyncio.run(first_attempt_after_start())
    second = asyncio.run(first_attempt_after_start())
    assert first.suggested_payment == second.suggested_payment == 42
    assert first.transaction_hash != second.transaction_hash
