"""The core scenarios against every development node: anvil, hardhat 3 and ganache 7.

Each node differs where a stream is fragile (FACTS.md, "Other development
nodes"): hardhat answers ``null`` for a filter it does not know, ganache
starts filters at creation like geth and numbers receipt logs per
transaction. Tests on ``dev_node`` share one node per kind and scope their
watchers to fresh random addresses; tests that rewrite history or restart the
node get a ``fresh_dev_node`` of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
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
from ogpu.events._devnode.nodes import DevNode
from ogpu.events._stream.hub import active_hubs
from tests.support.devnodes import random_address, take, wait_joined
from tests.support.fakenode import NEXUS
from tests.support.streams import Collector, ogpu_tasks, wait_until

pytestmark = pytest.mark.anyio

POLL = 0.05
# Long enough for ten polls: what has not arrived by then is not on its way.
QUIET = 0.5


def _six_cases(scope: str, other: str) -> list[tuple[Callable[..., Any], str, tuple[Any, ...], type[Any]]]:
    """watcher, event, values with ``scope`` in the scoping position, the class it yields."""
    return [
        (watch_task_published, "TaskPublished", (other, scope), TaskPublishedEvent),
        (watch_attempted, "Attempted", (scope, other, 2**256 - 1), AttemptedEvent),
        (watch_response_submitted, "ResponseSubmitted", (other, scope), ResponseSubmittedEvent),
        (watch_response_status_changed, "ResponseStatusChanged", (scope, 1), ResponseStatusChangedEvent),
        (watch_task_status_changed, "TaskStatusChanged", (scope, 5), TaskStatusChangedEvent),
        (watch_registered, "Registered", (other, 7, scope, 3), RegisteredEvent),
    ]


def _payments(events: list[AttemptedEvent]) -> list[int]:
    return [e.suggested_payment for e in events]


def _warnings(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "ogpu.events" and record.levelno == logging.WARNING and word in record.getMessage()
    ]


def _the_hub() -> Any:
    [hub] = active_hubs()
    return hub


async def _attempted_live(node: DevNode, task: str, **kwargs: Any) -> Collector[AttemptedEvent]:
    """A running watch_attempted(task) that has joined the stream."""
    collector: Collector[AttemptedEvent] = Collector(watch_attempted(task, poll_interval=POLL, **kwargs))
    await wait_joined()
    return collector


# --- (a) the six watchers decode real logs ---


async def test_the_six_watchers_yield_typed_events_from_real_logs(dev_node: DevNode) -> None:
    scope, other = random_address(), random_address()
    start = dev_node.block_number() + 1
    cases = _six_cases(scope, other)
    sent = []
    for _, event, values, _ in cases:
        # The same event under another scope first: the watcher must pass over it.
        dev_node.emit(NEXUS, event, *(other if v == scope else v for v in values))
        sent.append(dev_node.emit(NEXUS, event, *values))

    for (watcher, event, values, cls), tx in zip(cases, sent, strict=True):
        stream = watcher(scope.upper().replace("0X", "0x"), from_block=start, poll_interval=POLL)
        [got] = await take(stream, 1, timeout=30)
        await stream.aclose()
        assert type(got) is cls
        assert got.transaction_hash == tx.lower()
        receipt = dev_node.receipt(tx)
        assert got.block_number == int(receipt["blockNumber"], 16)
        assert got.block_hash == receipt["blockHash"]
        assert got.log_index == int(receipt["logs"][0]["logIndex"], 16)
        payload = [getattr(got, name) for name in EVENTS[event].field_names]  # in ABI order
        assert [p.lower() if isinstance(p, str) else p for p in payload] == [
            v.lower() if isinstance(v, str) else v for v in values
        ]


# --- (b) history, then live, without a gap or a repeat ---


async def test_history_then_live_without_gap_or_repeat(dev_node: DevNode) -> None:
    task = random_address()
    first = dev_node.block_number() + 1
    for payment in range(5):
        dev_node.emit(NEXUS, "Attempted", task, random_address(), payment)
    collector = await _attempted_live(dev_node, task, from_block=first)
    for payment in range(5, 10):
        dev_node.emit(NEXUS, "Attempted", task, random_address(), payment)
    events = await collector.wait_for(10)
    await asyncio.sleep(QUIET)
    await collector.stop()
    assert _payments(collector.events) == list(range(10))
    assert len({(e.block_hash, e.log_index) for e in events}) == 10


# --- (c) many logs in one block ---


async def test_many_logs_in_one_block_arrive_in_log_index_order(dev_node: DevNode) -> None:
    task = random_address()
    collector = await _attempted_live(dev_node, task)
    with dev_node.one_block():
        for payment in range(40):
            # Every other log belongs to another task: the watcher must skip them.
            owner = task if payment % 2 == 0 else random_address()
            dev_node.emit(NEXUS, "Attempted", owner, random_address(), payment)
    events = await collector.wait_for(20)
    await asyncio.sleep(QUIET)
    await collector.stop()
    assert _payments(collector.events) == list(range(0, 40, 2))
    assert len({e.block_number for e in events}) == 1
    assert [e.log_index for e in events] == sorted({e.log_index for e in events})
    history = await take(watch_attempted(task, from_block=events[0].block_number, poll_interval=POLL), 20)
    assert history == events


# --- (d) a filter lost behind the stream's back ---


async def test_a_filter_lost_behind_the_streams_back_is_refilled(dev_node: DevNode) -> None:
    task = random_address()
    collector = await _attempted_live(dev_node, task)
    dev_node.emit(NEXUS, "Attempted", task, random_address(), 0)
    await collector.wait_for(1)
    hub = _the_hub()
    # Past the polls right after an install, which also read eth_getLogs and would hide the loss.
    await wait_until(lambda: getattr(hub, "steady", True), "the stream to settle on its filter", 15.0)
    dev_node.rpc("eth_uninstallFilter", hub.filter_id)
    for payment in range(1, 6):
        dev_node.emit(NEXUS, "Attempted", task, random_address(), payment)
    await collector.wait_for(6)
    await asyncio.sleep(QUIET)
    await collector.stop()
    assert _payments(collector.events) == list(range(6))


# --- (e) leaving the loop uninstalls the filter ---


def _filter_known(node: DevNode, filter_id: str) -> bool:
    """Whether ``node`` still has the filter: an unknown one is an error, or ``null`` on hardhat."""
    try:
        return node.rpc("eth_getFilterChanges", filter_id) is not None
    except RuntimeError as exc:
        assert "filter" in str(exc).lower()
        return False


async def test_break_uninstalls_the_filter(dev_node: DevNode) -> None:
    task = random_address()
    stream = watch_attempted(task, poll_interval=POLL)
    first = asyncio.ensure_future(stream.__anext__())
    await wait_joined()
    filter_id = _the_hub().filter_id
    assert filter_id is not None and _filter_known(dev_node, filter_id)
    dev_node.emit(NEXUS, "Attempted", task, random_address(), 1)
    await asyncio.wait_for(first, 30)
    dev_node.emit(NEXUS, "Attempted", task, random_address(), 2)
    async for _ in stream:
        break
    # As when the loop's variable goes out of scope (``first`` holds the generator too).
    del stream, first
    await wait_until(lambda: not ogpu_tasks() and not active_hubs(), "the stream to shut down", 15.0)
    assert not _filter_known(dev_node, filter_id)


# --- (f) the node restarted on the same port ---


async def test_a_node_restarted_on_the_same_port_is_followed_from_its_first_block(
    fresh_dev_node: DevNode, caplog: pytest.LogCaptureFixture
) -> None:
    node = fresh_dev_node
    caplog.set_level(logging.WARNING, logger="ogpu.events")
    task = random_address()
    collector = await _attempted_live(node, task)
    node.mine(20)  # the old chain ends well above where the new one's events will be
    node.emit(NEXUS, "Attempted", task, random_address(), 0)
    await collector.wait_for(1)  # the stream has followed the old chain to its head

    # In a thread: the stream keeps polling (and failing) while the node is down.
    await asyncio.to_thread(node.restart)
    node.install_emitter(NEXUS)
    sent = [node.emit(NEXUS, "Attempted", task, random_address(), payment) for payment in (1, 2, 3)]

    events = await collector.wait_for(4, timeout=30)
    await asyncio.sleep(QUIET)
    await collector.stop()
    assert _payments(collector.events) == [0, 1, 2, 3]
    for event, tx in zip(events[1:], sent, strict=True):
        assert event.transaction_hash == tx.lower()
        assert event.block_hash == node.receipt(tx)["blockHash"]
    assert _warnings(caplog, "replaced"), "the stream says the chain was replaced"


# --- (g) reorgs ---


@pytest.mark.parametrize("confirmations", [0, 2])
async def test_a_reorg_yields_each_canonical_event_exactly_once(
    fresh_dev_node: DevNode, confirmations: int, caplog: pytest.LogCaptureFixture
) -> None:
    node = fresh_dev_node
    caplog.set_level(logging.WARNING, logger="ogpu.events")
    task = random_address()
    collector = await _attempted_live(node, task, confirmations=confirmations)

    node.emit(NEXUS, "Attempted", task, random_address(), 1)  # below the fork: canonical
    if confirmations:
        node.mine(confirmations)
    await collector.wait_for(1)
    fork = node.snapshot()
    node.emit(NEXUS, "Attempted", task, random_address(), 2)  # on the branch about to be replaced
    if confirmations == 0:
        await collector.wait_for(2)  # seen live before the reorg: a reorg the stream must notice
    else:
        await asyncio.sleep(QUIET)  # polled at depth 0 < 2 several times: not yet yielded
        assert _payments(collector.events) == [1]
    node.revert(fork)
    # The new branch is longer than the old one and carries other events.
    replacements = [node.emit(NEXUS, "Attempted", task, random_address(), payment) for payment in (3, 4)]
    node.mine(confirmations + 1)

    await wait_until(
        lambda: {3, 4} <= set(_payments(collector.events)),
        f"the replacement events (got {collector.events})",
        15.0,
    )
    await asyncio.sleep(QUIET)
    await collector.stop()
    seen = [(e.suggested_payment, e.block_number, e.log_index, e.block_hash[:10]) for e in collector.events]
    counts = Counter(_payments(collector.events))
    assert counts[1] == counts[3] == counts[4] == 1, seen
    canonical = [e for e in collector.events if e.suggested_payment != 2]
    assert [e.transaction_hash for e in canonical[1:]] == [tx.lower() for tx in replacements], seen
    assert [e.block_hash for e in canonical[1:]] == [node.receipt(tx)["blockHash"] for tx in replacements]
    if confirmations:
        assert counts[2] == 0, "an event reorged away before its depth is never yielded"
    else:
        assert counts[2] == 1
        assert _warnings(caplog, "reorg"), "the stream says it saw a reorg"
