"""The stream against what the chain really is (issue 8): every loss reported there, as a user sees it.

Each test drives the in-memory node into one of the reported situations and
asserts what a watcher yields: every canonical event exactly once, in chain
order, and a WARNING on ``ogpu.events`` where the stream had to recover from
something a user should hear about (a reorg, a replaced chain, an answer it
dropped). The tests only look at the node and at what watchers yield, never
at the stream's internals, so they hold for any implementation of the stream.

The node moves only when a test says so; ``heads(node, n)`` waits until the
stream has asked the node for its head ``n`` more times, which is how a test
lets a few polls happen without knowing how the stream is built.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ogpu.events import watch_attempted, watch_nexus
from tests.support.fakenode import FakeNode, raw_log
from tests.support.streams import (
    FAST,
    SENTINEL,
    TASK,
    Collector,
    Gate,
    address,
    all_gone,
    attempted,
    heads,
    payments,
    sentinel,
    start,
    wait_until,
    warned,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("info_logs", "stop_started_watchers")]

# How long a test waits for what it expects; short, so the tests that fail
# today (they describe the intended behaviour) do not make `make test` slow.
PATIENCE = 3.0
OTHER_CONTRACT = "0x" + "5a" * 20


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


def no_repeats(c: Collector[Any]) -> bool:
    ids = [(e.block_hash, e.log_index) for e in c.events]
    return len(ids) == len(set(ids))


# --- 1. hardhat: {"result": null} for a filter it no longer knows: in test_lost_filter.py ---


# --- 2. a dev node restarted on the same port: a new chain from block 0 ---


@pytest.mark.parametrize("pace", ["at once", "block by block"])
@pytest.mark.parametrize("confirmations", [0, 2])
async def test_dev_node_restarted_is_followed_from_its_new_genesis(
    node: FakeNode, gate: Gate, caplog: pytest.LogCaptureFixture, confirmations: int, pace: str
) -> None:
    node.mine(3)
    c = start(watch_attempted(TASK, from_block=1, poll_interval=FAST, confirmations=confirmations))
    for amount in (1, 2):
        attempted(node, TASK, amount)
        node.mine()
    node.mine(18)  # the old chain ends well above where the new one will be
    await c.until_payments([1, 2])
    node.restart()
    # 15 events on the new chain, all below the old chain's height.
    for amount in range(3, 18):
        attempted(node, TASK, amount)
        node.mine()
        if pace == "block by block":
            await heads(node)
    sentinel(node)
    node.mine(confirmations)
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, 2, *range(3, 18), SENTINEL]
    assert warned(caplog, "replaced")
    await all_gone(node)


async def test_dev_node_restarted_with_another_chain_id_raises_chain_changed(
    node: FakeNode, gate: Gate
) -> None:
    from ogpu import types

    c = start(watch_attempted(TASK, from_block=1, poll_interval=FAST))
    attempted(node, TASK, 1)
    node.mine(3)
    await c.until_payments([1])
    node.restart(chain_id=31337)
    attempted(node, TASK, 2)
    node.mine(3)
    with pytest.raises(types.ChainChangedError):
        await asyncio.wait_for(c.task, PATIENCE)
    # Nothing of the other chain reached the watcher before it failed.
    assert payments(c) == [1]
    await all_gone(node)


# --- 3. the head lagging by one block just when a filter is (re)created ---


async def test_fresh_watcher_whose_first_head_answers_lag_one_block_loses_nothing(
    node: FakeNode, gate: Gate
) -> None:
    node.mine(6)
    attempted(node, TASK, 1)
    node.mine()  # block 7, mined before the watcher starts
    node.lag_head([1] * 5)
    c = start(watch_attempted(TASK, from_block=7, poll_interval=FAST))
    await heads(node, 7)
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, SENTINEL]
    await all_gone(node)


# --- 4. and the reorgs a confirmations=0 watcher sees ---


async def test_reorg_below_the_cursor_without_filters_delivers_the_new_branch(
    node: FakeNode, gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    node.filters_supported = False
    node.mine(3)
    c = start(watch_attempted(TASK, from_block=4, poll_interval=FAST))
    await heads(node, 3)  # on the stream before block 4: it is followed live, not read as history
    attempted(node, TASK, 1)
    node.mine()  # block 4
    node.mine()  # block 5
    await c.until_payments([1])
    await heads(node, 3)  # the stream's cursor is at 5
    gone = node.blocks[4].logs[0]["transactionHash"]
    # Depth 2: the new branch's log sits in the first replaced block, below the cursor.
    node.reorg(2, {0: [("Attempted", TASK, address(), 2)]})
    await heads(node, 3)
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    # 1 was yielded before the reorg removed it (confirmations=0 cannot take it back).
    assert payments(c) == [1, 2, SENTINEL]
    assert no_repeats(c)
    assert warned(caplog, "reorg", gone)
    await all_gone(node)


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("removed", [True, False], ids=["geth removed logs", "anvil silent"])
async def test_reorg_with_filters_delivers_the_new_branch_and_names_what_left(
    node: FakeNode, gate: Gate, caplog: pytest.LogCaptureFixture, removed: bool, depth: int
) -> None:
    node.report_removed = removed
    node.mine(3)
    c = start(watch_attempted(TASK, from_block=4, poll_interval=FAST))
    await heads(node, 6)  # on the stream before block 4: it is followed live, not read as history
    attempted(node, TASK, 1)
    node.mine()  # block 4
    node.mine(depth - 1)
    await c.until_payments([1])
    await heads(node, 3)
    gone = node.blocks[4].logs[0]["transactionHash"]
    node.reorg(depth, {0: [("Attempted", TASK, address(), 2)]})
    await heads(node, 3)
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, 2, SENTINEL]
    assert no_repeats(c)
    assert warned(caplog, "reorg", gone)
    await all_gone(node)


@pytest.mark.parametrize("filters", [True, False], ids=["filters", "no filters"])
async def test_reorg_of_a_block_a_watcher_read_as_history_delivers_the_new_branch(
    node: FakeNode, gate: Gate, caplog: pytest.LogCaptureFixture, filters: bool
) -> None:
    node.filters_supported = filters
    node.report_removed = True
    node.mine(3)
    attempted(node, TASK, 1)
    node.mine()  # block 4, mined before the watcher starts: it reads it from history
    c = start(watch_attempted(TASK, from_block=4, poll_interval=FAST))
    await c.until_payments([1])
    await heads(node, 4)
    gone = node.blocks[4].logs[0]["transactionHash"]
    node.reorg(1, {0: [("Attempted", TASK, address(), 2)]})
    await heads(node, 3)
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, 2, SENTINEL]
    assert warned(caplog, "reorg", gone)
    await all_gone(node)


# --- 5. one head answer far ahead ---


@pytest.mark.parametrize("then", ["a late watcher joins", "an answer is lost"])
async def test_one_head_answer_far_ahead_is_not_believed(node: FakeNode, gate: Gate, then: str) -> None:
    first = start(watch_attempted(TASK, from_block=node.head + 1, poll_interval=FAST))
    await heads(node, 6)
    node.spike_head(1_000)
    await heads(node, 3)
    late: Collector[Any] | None = None
    if then == "a late watcher joins":
        late = start(watch_attempted(TASK, poll_interval=FAST))
        await heads(node, 4)  # it has joined: what is mined from here is after it started
    else:
        node.lose_next_answer()
        await heads(node, 4)
    attempted(node, TASK, 1)
    node.mine()
    if late is None:
        # Lost before its first poll: the refill must start where the chain really is.
        node.forget_filters()
        await heads(node, 4)
    sentinel(node)
    for c in [first, *([late] if late else [])]:
        await c.until_sentinel()
        await c.stop()
        assert payments(c) == [1, SENTINEL]
    await all_gone(node)


# --- 6. answers taken on trust ---


async def test_logs_beyond_to_block_are_not_yielded_before_their_confirmations(
    node: FakeNode, gate: Gate
) -> None:
    node.get_logs_overreach = True
    node.mine(3)
    c = start(watch_attempted(TASK, from_block=4, poll_interval=FAST, confirmations=3))
    await heads(node, 3)
    attempted(node, TASK, 1)
    node.mine()  # block 4, with nothing on top of it
    await heads(node, 4)
    node.reorg(1, {0: [("Attempted", TASK, address(), 2)]})
    sentinel(node)
    node.mine(3)
    await c.until_sentinel()
    await c.stop()
    # 1 never had a block on top of it, let alone three: it is never yielded.
    assert payments(c) == [2, SENTINEL]
    await all_gone(node)


async def test_history_with_logs_beyond_each_chunk_yields_each_log_once(node: FakeNode, gate: Gate) -> None:
    node.get_logs_overreach = True
    node.max_range = 2  # six chunks over blocks 1..12
    node.mine(11)
    attempted(node, TASK, 1)
    node.mine()  # block 12
    c = start(watch_attempted(TASK, from_block=1, poll_interval=FAST))
    await heads(node, 3)
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, SENTINEL]
    await all_gone(node)


@pytest.mark.parametrize("watcher", ["watch_attempted", "watch_nexus"])
async def test_another_contracts_log_in_a_filter_answer_is_not_yielded(
    node: FakeNode, gate: Gate, caplog: pytest.LogCaptureFixture, watcher: str
) -> None:
    gen = (
        watch_attempted(TASK, from_block=node.head + 1, poll_interval=FAST)
        if watcher == "watch_attempted"
        else watch_nexus(from_block=node.head + 1, poll_interval=FAST)
    )
    c = start(gen)
    await heads(node, 6)
    attempted(node, TASK, 1)
    node.mine()
    block = node.blocks[-1]
    # Another contract's log in the same block, with a Nexus event's topic.
    values: tuple[Any, ...] = (
        ("Attempted", TASK, address(), 666)
        if watcher == "watch_attempted"
        else ("OwnershipTransferred", address(), address())
    )
    foreign = raw_log(*values, block=block.number, log_index=7, address=OTHER_CONTRACT, block_hash=block.hash)
    node.inject_filter_log(foreign)
    await heads(node, 3)
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert foreign["transactionHash"] not in {e.transaction_hash for e in c.events}
    assert payments(c) == [1, SENTINEL]
    assert warned(caplog)
    await all_gone(node)


async def test_log_with_an_absurd_block_number_does_not_derail_the_stream(
    node: FakeNode, gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    node.mine(3)
    attempted(node, TASK, 1)
    node.mine()  # block 4
    early = start(watch_attempted(TASK, from_block=4, poll_interval=FAST))
    await early.until_payments([1])
    await heads(node, 4)
    node.inject_filter_log(raw_log("Attempted", TASK, address(), 666, block=2**64, log_index=0))
    await heads(node, 3)
    late = start(watch_attempted(TASK, from_block=4, poll_interval=FAST))
    await heads(node, 3)
    attempted(node, TASK, 2)
    node.mine()
    sentinel(node)
    for c in (early, late):
        await c.until_sentinel()
        await c.stop()
        assert payments(c) == [1, 2, SENTINEL]
    assert warned(caplog)
    await all_gone(node)


# --- 7. a watcher joining while a poll is out ---


@pytest.mark.parametrize("confirmations", [0, 1], ids=["existing lane", "new lane"])
async def test_watcher_joining_mid_poll_sees_what_is_mined_after_it_started(
    node: FakeNode, gate: Gate, confirmations: int
) -> None:
    node.mine(5)
    # Slow poll intervals: the joiner must not wait for the next scheduled poll.
    running = start(watch_attempted(TASK, poll_interval=5.0))
    await heads(node, 2)  # the stream knows the head and has polled; it sleeps for 5 s now
    # A slightly faster watcher wakes the loop (it ticks at the shortest
    # interval); that poll is held, and the joiner comes while it is out.
    gate.hold("eth_getFilterChanges")
    waker = start(watch_attempted(TASK, poll_interval=4.9))
    await asyncio.wait_for(gate.held.wait(), PATIENCE)
    joiner = start(watch_attempted(TASK, poll_interval=5.0, confirmations=confirmations))
    await asyncio.sleep(0.05)  # its __anext__ is waiting
    attempted(node, TASK, 1)
    node.mine()  # block 6: mined after the joiner started
    node.mine()  # a confirmation for it
    gate.open()
    await asyncio.wait_for(joiner.until_payments([1]), 2.0)
    for c in (running, waker, joiner):
        await c.stop()
    assert payments(joiner) == [1]
    await all_gone(node)


# --- 8. eth_uninstallFilter refused once ---


async def test_uninstall_refused_once_while_streaming_is_retried(node: FakeNode, gate: Gate) -> None:
    c = start(watch_attempted(TASK, from_block=node.head + 1, poll_interval=FAST))
    await heads(node, 6)
    first = node.created_filters[0]
    # Another backend says the filter is gone (it is not): the stream drops it,
    # and its first attempt to uninstall it meets a 503.
    node.fail_http_for("eth_uninstallFilter", 503)
    node.fail_rpc("eth_getFilterChanges", -32000, "filter not found")
    await wait_until(lambda: len(node.created_filters) >= 2, "a new filter", PATIENCE)
    await wait_until(lambda: first not in node.filters, "the dropped filter uninstalled", PATIENCE)
    attempted(node, TASK, 1)
    node.mine()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, SENTINEL]
    await all_gone(node)


async def test_uninstall_refused_once_at_teardown_is_retried(node: FakeNode, gate: Gate) -> None:
    c = start(watch_attempted(TASK, from_block=node.head + 1, poll_interval=FAST))
    attempted(node, TASK, 1)
    node.mine()
    await c.until_payments([1])
    node.fail_http_for("eth_uninstallFilter", 503)
    await c.stop()
    await wait_until(lambda: not node.filters, "the filter uninstalled", PATIENCE)
    await all_gone(node)


# --- 9. two head answers from a backend ahead of the filter's, then the filter lost:
# in test_lost_filter.py ---
