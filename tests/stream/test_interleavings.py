"""Interleavings the shared stream must survive: watchers leaving mid-tick, cancelled
teardowns, malformed logs, filters lost while the install-lag cover is running.

A :class:`Gate` holds one chosen HTTP request of the hub until the test opens it,
so the test can act (cancel a watcher, change the chain) at exactly that point.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ogpu.events import watch_attempted
from ogpu.events._net import faults as _faults
from ogpu.events._stream.hub import active_hubs
from ogpu.types import UnsupportedNodeError
from tests.support.fakenode import FakeNode, http_response
from tests.support.streams import (
    FAST,
    SENTINEL,
    TASK,
    Collector,
    Gate,
    address,
    all_gone,
    attempted,
    payments,
    prove_filter,
    sentinel,
    streaming,
    the_hub,
    ticks,
    wait_until,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


def lose_answer(node: FakeNode) -> Callable[[httpx.Request], httpx.Response]:
    def lost(request: httpx.Request) -> httpx.Response:
        node._serve(json.loads(request.content))
        raise httpx.ReadTimeout("the answer never arrived", request=request)

    return lost


# --- the live lane changing while a tick is out ---


async def test_live_watcher_leaving_while_its_filter_is_installed_does_not_break_the_next(
    node: FakeNode, gate: Gate
) -> None:
    deep = Collector(watch_attempted(TASK, poll_interval=FAST, confirmations=1))
    hub = await streaming()
    gate.hold("eth_newFilter")
    early = Collector(watch_attempted(TASK, poll_interval=FAST))
    await gate.held.wait()
    # It gives up while the hub is creating the filter for it.
    await early.stop()
    gate.open()
    await ticks(hub, 2)
    late = Collector(watch_attempted(TASK, poll_interval=FAST))
    await late.until(lambda: hub.subscriber_count == 2 and hub.filter_id is not None, "the late watcher")
    prove_filter(node)
    await late.until(lambda: hub.steady, "the install checks to end")
    attempted(node, TASK, 1)
    node.mine()
    sentinel(node)
    node.mine()  # the depth the confirmations=1 watcher waits for
    await late.until_sentinel()
    await deep.until_sentinel()
    assert payments(late) == [1, SENTINEL]
    assert payments(deep) == [1, SENTINEL]
    await late.stop()
    await deep.stop()
    await all_gone(node)


@pytest.mark.parametrize("fault", ["answer lost", "filter forgotten"])
async def test_live_watcher_leaving_during_a_failed_poll_leaves_the_others_running(
    node: FakeNode, gate: Gate, fault: str
) -> None:
    deep = Collector(watch_attempted(TASK, poll_interval=FAST, confirmations=1))
    live = Collector(watch_attempted(TASK, poll_interval=FAST))
    hub = await streaming(2)
    if fault == "answer lost":
        gate.hold("eth_getFilterChanges", lose_answer(node))
    else:
        node.fail_rpc("eth_getFilterChanges", -32000, "filter not found")
        gate.hold("eth_getFilterChanges")
    await gate.held.wait()
    await live.stop()
    gate.open()
    await ticks(hub, 2)
    attempted(node, TASK, 1)
    node.mine()
    sentinel(node)
    node.mine()
    await deep.until_sentinel()
    assert payments(deep) == [1, SENTINEL]
    await deep.stop()
    await all_gone(node)


# --- cleanup that is itself interrupted ---


async def test_closing_task_cancelled_during_teardown_still_uninstalls_and_is_cancelled(
    node: FakeNode, gate: Gate
) -> None:
    gen = watch_attempted(TASK, poll_interval=FAST)
    first = asyncio.get_running_loop().create_task(gen.__anext__())
    await streaming()
    attempted(node, TASK, 1)
    node.mine()
    assert (await first).suggested_payment == 1
    gate.hold("eth_uninstallFilter")
    closing = asyncio.get_running_loop().create_task(gen.aclose())
    await gate.held.wait()
    # Whoever closes the watcher is cancelled (a timeout, a task group) mid-teardown.
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    gate.open()
    await all_gone(node)


# --- logs a node should never send ---

MALFORMED: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "block number not hex": lambda raw: {**raw, "blockNumber": "0xzz"},
    "block number an int": lambda raw: {**raw, "blockNumber": 7},
    "block hash an int": lambda raw: {**raw, "blockHash": 12},
    "topic null": lambda raw: {**raw, "topics": [None]},
    "data null": lambda raw: {**raw, "data": None},
}


@pytest.mark.parametrize("when", ["right after install", "steady"])
@pytest.mark.parametrize("damage", sorted(MALFORMED))
async def test_malformed_filter_log_is_skipped_not_fatal(
    node: FakeNode, gate: Gate, caplog: pytest.LogCaptureFixture, when: str, damage: str
) -> None:
    caplog.set_level(logging.WARNING, logger="ogpu.events")
    gate.hold("eth_getFilterChanges")
    c = Collector(watch_attempted(TASK, poll_interval=FAST))
    await gate.held.wait()
    if when == "steady":
        gate.open()
        prove_filter(node)
        await wait_until(lambda: bool(active_hubs()) and the_hub().steady, "the install checks to end")
        gate.hold("eth_getFilterChanges")
        await gate.held.wait()
    attempted(node, TASK, 1)
    node.mine()
    good = node.blocks[-1].logs[0]
    for flt in node.filters.values():
        flt.pending.append(MALFORMED[damage]({**good, "logIndex": "0x9"}))
    gate.open()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, SENTINEL]
    assert any("malformed log" in r.getMessage() for r in caplog.records)
    await all_gone(node)


async def test_malformed_history_log_is_skipped_not_fatal(
    node: FakeNode, gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ogpu.events")
    attempted(node, TASK, 1)
    node.mine()
    good = node.blocks[-1].logs[0]
    node.blocks[-1].logs.append({**good, "logIndex": "0x9", "blockNumber": "0xzz"})
    c = Collector(watch_attempted(TASK, from_block=0, poll_interval=FAST))
    await streaming()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, SENTINEL]
    await all_gone(node)


# --- a node that cannot say where its head is ---


async def test_node_without_block_headers_raises_a_typed_error(node: FakeNode, gate: Gate) -> None:
    node.filters_supported = False
    for method in ("eth_blockNumber", "eth_getBlockByNumber"):
        node.fail_rpc(method, -32601, f"the method {method} does not exist/is not available", 10**4)
    gen = watch_attempted(TASK, poll_interval=FAST)
    with pytest.raises(UnsupportedNodeError):
        await asyncio.wait_for(gen.__anext__(), 5)
    await all_gone(node)


# --- a long outage ---


async def test_node_down_for_hours_is_waited_for_with_capped_backoff(
    node: FakeNode, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    # The backoff's sleeps are recorded, not slept: hours of retries in a moment.
    monkeypatch.setattr(_faults, "asyncio", type("Clock", (), {"sleep": staticmethod(no_wait)}))
    c = Collector(watch_attempted(TASK, poll_interval=FAST))
    hub = await streaming()
    node.http_override = http_response(503)
    await c.until(lambda: len(waits) >= 1500, "1500 retries")
    node.http_override = None
    await ticks(hub)
    attempted(node, TASK, 1)
    node.mine()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, SENTINEL]
    assert max(waits) <= 15.0
    await all_gone(node)


# --- the install-lag cover, and a filter lost meanwhile: in test_lost_filter.py ---


# --- sanity: many watchers joining and leaving at random ticks ---


async def test_watchers_churning_on_a_shared_stream_neither_lose_nor_repeat(
    node: FakeNode, gate: Gate
) -> None:
    steady = Collector(watch_attempted(TASK, poll_interval=FAST))
    deep = Collector(watch_attempted(TASK, poll_interval=FAST, confirmations=2))
    hub = await streaming(2)
    others = [address() for _ in range(3)]
    churn: list[Collector[Any]] = []
    for amount in range(1, 16):
        attempted(node, TASK, amount)
        attempted(node, others[amount % 3], amount)
        node.mine()
        if amount % 4 == 0:
            node.forget_filters()
        if amount % 3 == 0:
            churn.append(Collector(watch_attempted(others[amount % 3], poll_interval=FAST)))
        if amount % 5 == 0 and churn:
            await churn.pop(0).stop()
        await ticks(hub)
    sentinel(node)
    node.mine(2)
    await steady.until_sentinel()
    await deep.until_sentinel()
    assert payments(steady) == [*range(1, 16), SENTINEL]
    assert payments(deep) == [*range(1, 16), SENTINEL]
    for c in churn:
        await c.stop()
        ids = c.ids()
        assert ids == sorted(set(ids))
    await steady.stop()
    await deep.stop()
    await all_gone(node)


# --- a backend ahead of the one holding the filter, then the filter lost: in test_lost_filter.py ---
