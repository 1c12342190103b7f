"""A lost filter loses no event: the node forgot it, another backend never knew it, or it answers null.

Nodes drop filters when they restart, after minutes without a poll, or
because the load balancer sent the poll to a backend that never had it;
each says so in its own words (``filter not found`` under several codes, or
a ``null`` result). The stream installs a new filter, reads the gap with
``eth_getLogs``, uninstalls the old one where it may still exist, and
yields every event once, in chain order, also when the head answers lag
or run ahead around the loss. The nodes' words are classified in
``tests/unit/test_faults.py`` and ``tests/unit/test_chain_view.py``; the same loss on real nodes is in
``tests/nodes/test_core_scenarios.py`` and through the kit's ``lose_filters``
in ``tests/stream/test_testing_kit.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from ogpu.events import watch_attempted
from tests.support.fakenode import FakeNode
from tests.support.streams import (
    FAST,
    SENTINEL,
    TASK,
    Collector,
    Gate,
    all_gone,
    attempted,
    heads,
    payments,
    prove_filter,
    sentinel,
    start,
    streaming,
    the_hub,
    ticks,
    wait_until,
    warned,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("info_logs", "stop_started_watchers")]


@pytest.fixture
def node() -> FakeNode:
    """The in-memory node; a test serves it through ``gate`` (respx) or ``kit``."""
    return FakeNode()


@pytest.fixture
def kit(node: FakeNode) -> Iterator[FakeNode]:
    """``node`` served by the kit's own transport (no respx), as a user's test serves it."""
    with node:
        yield node


@pytest.mark.usefixtures("kit")
@pytest.mark.parametrize("code", [-32000, -32600, -32602, -32001])
async def test_forgotten_filter_is_recreated_and_the_gap_refilled(
    node: FakeNode, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    node.filter_lost_code = code
    caplog.set_level(logging.WARNING, logger="ogpu.events")
    c = Collector(watch_attempted(TASK, poll_interval=FAST))
    hub = await streaming()
    attempted(node, TASK, 1)
    node.mine()
    await c.until(lambda: len(c.events) == 1, "the first event")
    # The node restarts between two polls, with blocks mined meanwhile.
    node.forget_filters()
    for amount in range(2, 6):
        attempted(node, TASK, amount)
        node.mine()
    await wait_until(lambda: node.count("eth_newFilter") == 2, "the filter to be recreated")
    await ticks(hub)
    attempted(node, TASK, 6)
    node.mine()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert [e.suggested_payment for e in c.events] == [*range(1, 7), SENTINEL]
    assert ("eth_getFilterChanges", code, "filter not found") in node.errors
    assert any("dropped" in r.getMessage() for r in caplog.records)
    await all_gone(node)


@pytest.mark.parametrize("batches", [True, False], ids=["batched", "single calls"])
async def test_null_answer_for_a_forgotten_filter_is_a_lost_filter(
    node: FakeNode, gate: Gate, caplog: pytest.LogCaptureFixture, batches: bool
) -> None:
    node.null_for_unknown_filter = True
    node.batch_supported = batches
    c = start(watch_attempted(TASK, from_block=node.head + 1, poll_interval=FAST))
    attempted(node, TASK, 1)
    node.mine()
    await c.until_payments([1])
    node.forget_filters()
    await heads(node, 2)
    attempted(node, TASK, 2)
    node.mine()
    attempted(node, TASK, 3)
    node.mine()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, 2, 3, SENTINEL]
    assert warned(caplog)
    await all_gone(node)


@pytest.mark.usefixtures("kit")
async def test_filter_unknown_to_one_backend_is_replaced_and_the_old_one_uninstalled(node: FakeNode) -> None:
    c = Collector(watch_attempted(TASK, poll_interval=FAST))
    hub = await streaming()
    first_filter = hub.filter_id
    attempted(node, TASK, 1)
    node.mine()
    # Another backend answers this poll: it does not know the filter, which still exists.
    node.fail_rpc("eth_getFilterChanges", -32000, "filter not found")
    await wait_until(lambda: hub.filter_id not in (None, first_filter), "a new filter")
    attempted(node, TASK, 2)
    node.mine()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert [e.suggested_payment for e in c.events] == [1, 2, SENTINEL]
    assert next(params for method, params in node.calls if method == "eth_uninstallFilter") == [first_filter]
    await all_gone(node)


async def test_stream_closed_while_uninstalling_a_stale_filter_uninstalls_it_at_teardown(
    node: FakeNode, gate: Gate
) -> None:
    c = Collector(watch_attempted(TASK, poll_interval=FAST))
    await streaming()
    # Another backend answers this poll and does not know the filter, which still exists.
    node.fail_rpc("eth_getFilterChanges", -32000, "filter not found")
    gate.hold("eth_uninstallFilter")
    await gate.held.wait()
    await c.stop()
    gate.open()
    await all_gone(node)


async def test_logs_set_aside_by_the_install_cover_survive_a_lost_filter(node: FakeNode, gate: Gate) -> None:
    node.mine(5)
    gate.hold("eth_getFilterChanges")
    c = Collector(watch_attempted(TASK, poll_interval=FAST))
    await gate.held.wait()
    hub = the_hub()
    # The filter reports a block the (lagging) head answers have not reached:
    # the cover sets its log aside for eth_getLogs to read later.
    attempted(node, TASK, 1)
    node.mine()
    node.lag_head([2])
    gate.hold("eth_getFilterChanges")
    gate.open()
    await gate.held.wait()
    # The next poll finds the filter gone, and the head answers keep lagging
    # through the new filter's install and its checks.
    node.fail_rpc("eth_getFilterChanges", -32000, "filter not found")
    node.lag_head([2] * 8)
    gate.open()
    await wait_until(lambda: not node._head_lag, "the lagging head answers")
    await ticks(hub, 2)
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, SENTINEL]
    await all_gone(node)


async def test_filter_recreated_while_the_head_lags_one_block_loses_nothing(
    node: FakeNode, gate: Gate
) -> None:
    node.mine(6)
    c = start(watch_attempted(TASK, from_block=1, poll_interval=FAST))
    await heads(node, 8)  # the stream sits at head 6, its install checks done
    attempted(node, TASK, 1)
    node.mine()  # block 7
    node.forget_filters()
    node.lag_head([1] * 5)
    await heads(node, 7)
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, SENTINEL]
    await all_gone(node)


# Heads from the backend ahead move the live cursor over blocks the filter has
# not reported: the refill after a lost filter starts a margin below the cursor,
# and the made-up headers of blocks not yet mined fail their hash check.
@pytest.mark.parametrize("answers_ahead", [1, 2, 5])
async def test_head_reported_ahead_of_the_filter_then_filter_lost_loses_nothing(
    node: FakeNode, gate: Gate, answers_ahead: int
) -> None:
    c = Collector(watch_attempted(TASK, poll_interval=FAST))
    hub = await streaming()
    prove_filter(node)
    await wait_until(lambda: hub.steady, "the install checks to end")
    # Answers from a backend two blocks ahead of the one that holds the filter.
    node.lag_head([-2] * answers_ahead)
    await ticks(hub, 3)
    attempted(node, TASK, 1)
    node.mine(2)
    node.forget_filters()
    await wait_until(lambda: node.count("eth_newFilter") == 2, "the filter to be recreated")
    await ticks(hub, 2)
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, SENTINEL]
    await all_gone(node)


async def test_two_head_answers_from_a_backend_ahead_then_filter_lost_lose_nothing(
    node: FakeNode, gate: Gate
) -> None:
    c = start(watch_attempted(TASK, from_block=node.head + 1, poll_interval=FAST))
    await heads(node, 6)
    node.lag_head([-2, -2])
    await heads(node, 3)
    attempted(node, TASK, 1)
    node.mine(2)
    node.forget_filters()
    await wait_until(lambda: node.count("eth_newFilter") == 2, "the filter to be recreated")
    await heads(node, 2)
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, SENTINEL]
    await all_gone(node)
