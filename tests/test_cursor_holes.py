"""The holes an attacker of "exactly once, in chain order" found (issue 16), one test each.

Each test drives the in-memory node into the exact fault of one report and
asserts what the user sees: every event once, in chain order, and a WARNING
where something left the chain. They failed on the stream before the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ogpu.events import watch_attempted
from tests.fakenode import FakeNode, wait_until
from tests.test_resume import _first
from tests.test_stream_unit import (
    FAST,
    SENTINEL,
    Collector,
    address,
    all_gone,
    prove_filter,
    streaming,
    ticks,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def node() -> Iterator[FakeNode]:
    with FakeNode() as fake:
        yield fake


def payments(c: Collector) -> list[int]:
    return [e.suggested_payment for e in c.events]


def in_chain_order(c: Collector) -> bool:
    return c.ids() == sorted(c.ids())


async def test_a_null_answer_to_eth_getlogs_is_read_again_not_taken_as_empty(
    node: FakeNode, caplog: pytest.LogCaptureFixture
) -> None:
    """Hole 7: one ``null`` answer for a history chunk lost the chunk's events."""
    task = address()
    for payment in (1, 2, 3):
        node.add_log("Attempted", task, address(), payment)
        node.mine()
    node.answer_null("eth_getLogs")
    c = Collector(watch_attempted(task, from_block=0, poll_interval=FAST))
    await c.until(lambda: len(c.events) >= 3, "the history")
    node.add_log("Attempted", task, address(), SENTINEL)
    node.mine()
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, 2, 3, SENTINEL]
    assert node.count("eth_getLogs") >= 2
    assert "not a list" in caplog.text
    await all_gone(node)


async def test_a_block_mined_before_the_filter_while_heads_lag_is_read(node: FakeNode) -> None:
    """Hole 1: the node is at block 8 when the filter is made; head answers say 6, 6, 6, 7.

    The filter reports only blocks after 8, and no head answer showed 8 at
    install: the old install cover read to 7 and ended, and the cursor later
    passed 8 on the filter's word alone.
    """
    task = address()
    node.mine(7)
    node.add_log("Attempted", task, address(), 1)
    assert node.mine() == 8
    # Every head answer lags (the first contact, the install, the first polls).
    node.lag_head([2] * 8 + [1] * 4)
    c = Collector(watch_attempted(task, from_block=6, poll_interval=FAST))
    await streaming()
    for _ in range(6):
        hub = await streaming()
        await ticks(hub)
    node.mine()  # block 9: heads now reach 8
    hub = await streaming()
    await ticks(hub, 3)
    node.add_log("Attempted", task, address(), SENTINEL)
    node.mine()
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [1, SENTINEL]
    await all_gone(node)


async def test_a_log_held_above_a_lagging_head_is_dropped_when_a_reorg_replaces_its_block(
    node: FakeNode,
) -> None:
    """Hole 6: the reconcile never looked at held logs, so the orphan came after the new branch."""
    task = address()
    c = Collector(watch_attempted(task, poll_interval=FAST))
    hub = await streaming()
    prove_filter(node)
    await wait_until(lambda: hub.steady, "the filter to prove itself")
    node.lag_head([1] * 8)  # head answers one block behind the filter's backend
    node.add_log("Attempted", task, address(), 1)
    node.mine()
    await ticks(hub, 2)  # the filter hands over the log; no head has shown its block: held
    assert c.events == []
    node.reorg(2, {0: [("Attempted", task, address(), 2)]})
    await ticks(hub, 4)
    node.add_log("Attempted", task, address(), SENTINEL)
    node.mine()
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [2, SENTINEL]
    await all_gone(node)


@pytest.mark.parametrize("confirmations", [0, 1])
async def test_a_replaced_chain_names_every_yielded_event_that_left_it(
    node: FakeNode, caplog: pytest.LogCaptureFixture, confirmations: int
) -> None:
    """Hole 9: only pinned heights were compared, so 0 of 7 yielded events were named."""
    task = address()
    node.mine(2)
    c = Collector(watch_attempted(task, from_block=1, poll_interval=FAST, confirmations=confirmations))
    for payment in range(1, 8):
        node.add_log("Attempted", task, address(), payment)
        node.mine()
    node.mine(confirmations)
    await c.until(lambda: len(c.events) == 7, "the seven events of the old chain")
    yielded = [(e.block_number, e.log_index) for e in c.events]
    node.restart()
    node.mine(12)
    node.add_log("Attempted", task, address(), SENTINEL)
    node.mine(1 + confirmations)
    await c.until_sentinel()
    await c.stop()
    warning = " ".join(r.getMessage() for r in caplog.records if "left the chain" in r.getMessage())
    named = [(b, i) for b, i in yielded if f"block {b} index {i} " in warning]
    assert named == yielded


def _block_of_ten(node: FakeNode, task: str) -> int:
    node.mine(3)
    for payment in range(1, 11):
        node.add_log("Attempted", task, address(), payment)
    return node.mine()


async def test_after_a_block_a_lagging_backend_lacks_waits_for_it_instead_of_judging_it(
    node: FakeNode, caplog: pytest.LogCaptureFixture
) -> None:
    """Hole 5: null by number and by hash from a backend behind was taken for a reorg."""
    task = address()
    block = _block_of_ten(node, task)
    first = await _first(watch_attempted(task, from_block=block, poll_interval=FAST), 4)
    node.behind(1, requests=4)  # the block of the position is the head: this backend lacks it
    c = Collector(watch_attempted(task, after=first[-1], poll_interval=FAST))
    await c.until(lambda: len(c.events) >= 6, "the rest of the block")
    node.add_log("Attempted", task, address(), SENTINEL)
    node.mine()
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [5, 6, 7, 8, 9, 10, SENTINEL]
    assert "no longer on the chain" not in caplog.text
    await all_gone(node)


async def test_after_a_reorged_block_whose_logs_the_node_no_longer_serves_resumes_without_hanging(
    node: FakeNode, caplog: pytest.LogCaptureFixture
) -> None:
    """Hole 10: "unknown block" for eth_getLogs by an orphan's hash was retried for ever."""
    node.orphan_logs_by_hash = False
    task = address()
    block = _block_of_ten(node, task)
    node.mine(2)
    first = await _first(watch_attempted(task, from_block=block, poll_interval=FAST), 4)
    node.reorg(3, {0: [("Attempted", task, address(), 11)]})  # replaces the block of ten
    c = Collector(watch_attempted(task, after=first[-1], poll_interval=FAST))
    await c.until(lambda: len(c.events) >= 1, "the new branch")
    node.add_log("Attempted", task, address(), SENTINEL)
    node.mine()
    await c.until_sentinel()
    await c.stop()
    assert payments(c) == [11, SENTINEL]
    assert "no longer on the chain" in caplog.text
    await all_gone(node)


async def test_a_live_lane_joining_a_node_without_filters_starts_at_a_head_the_chain_believes() -> None:
    """Hole 2: the lane started at the raw head of a backend one block ahead, and its block was lost."""
    with FakeNode(filters_supported=False) as node:
        task = address()
        node.mine(3)
        deep = Collector(watch_attempted(address(), poll_interval=FAST, confirmations=1))
        hub = await streaming()
        node.lag_head([-1] * 3)  # a backend one block ahead answers the next heads
        c = Collector(watch_attempted(task, from_block=1, poll_interval=FAST))
        await streaming(2)
        node.add_log("Attempted", task, address(), 1)
        node.mine()  # the block the backend ahead had already shown
        await ticks(hub, 3)
        node.add_log("Attempted", task, address(), SENTINEL)
        node.mine()
        await c.until_sentinel()
        await c.stop()
        await deep.stop()
        assert payments(c) == [1, SENTINEL]
        await all_gone(node)


@pytest.mark.parametrize("when", ["after it joined", "between the check and the join"])
async def test_a_reorg_below_the_block_after_names_brings_the_new_branch_to_the_resumed_watcher(
    node: FakeNode, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """Hole 3: the resumed watcher's floor stayed at the resume block; the new branch below it never came."""
    from ogpu.events._stream import resume as _resume

    task = address()
    block = _block_of_ten(node, task)  # blocks block-3..block-1 hold nothing of the task
    node.mine(1)
    first = await _first(watch_attempted(task, from_block=block, poll_interval=FAST), 4)

    def reorg() -> None:
        # Replaces block-1.. : the new branch has an event one block below the position's block.
        node.reorg(node.head - block + 2, {0: [("Attempted", task, address(), 20)]})

    if when == "between the check and the join":
        checked = _resume.resume_point

        async def check_then_reorg(*args: Any, **kwargs: Any) -> Any:
            point = await checked(*args, **kwargs)
            reorg()
            return point

        monkeypatch.setattr(_resume, "resume_point", check_then_reorg)
    c = Collector(watch_attempted(task, after=first[-1], poll_interval=FAST))
    if when == "after it joined":
        await c.until(lambda: len(c.events) == 6, "the rest of the block")
        reorg()
    await c.until(lambda: 20 in payments(c), "the new branch's event")
    node.add_log("Attempted", task, address(), SENTINEL)
    node.mine()
    await c.until_sentinel()
    await c.stop()
    got = payments(c)
    assert got.count(20) == 1 and got[-1] == SENTINEL
    if when == "between the check and the join":
        assert got == [20, SENTINEL]  # nothing of the old branch: the reorg came before any was read
    assert "after= names" in caplog.text or "left the chain" in caplog.text
    await all_gone(node)


@pytest.mark.parametrize("change", ["restart", "reorg"])
async def test_history_read_in_chunks_follows_the_chain_when_it_changes_between_chunks(
    change: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Hole 4: history went on reading its next chunk on the new chain: higher events first, lower after."""
    with FakeNode(max_range=5) as node:
        task = address()
        for payment in range(1, 41):
            node.add_log("Attempted", task, address(), payment)
            node.mine()
        node.mine(3)
        history_reads = 0
        plain = node._get_logs

        def get_logs(params: list[Any]) -> list[Any]:
            nonlocal history_reads
            query = params[0] if params else {}
            answer: list[Any] = plain(params)
            if "topics" in query and "blockHash" not in query:
                history_reads += 1
                if history_reads == 2:  # served the second chunk: the chain changes before the third
                    if change == "restart":
                        node.restart()
                        for payment in range(101, 131):
                            node.add_log("Attempted", task, address(), payment)
                            node.mine()
                    else:
                        node.reorg(30, {i: [("Attempted", task, address(), 101 + i)] for i in range(30)})
            return answer

        node._get_logs = get_logs
        c = Collector(watch_attempted(task, from_block=1, poll_interval=FAST))
        await c.until(lambda: 130 in payments(c), "the new chain's events")
        node.add_log("Attempted", task, address(), SENTINEL)
        node.mine()
        await c.until_sentinel()
        await c.stop()
        got = payments(c)
        new = [p for p in got if 100 < p < 200]
        assert new == list(range(101, 131)), new  # each once, in chain order
        old = [p for p in got if p <= 40]
        assert old == sorted(set(old))
        if change == "reorg":
            assert old[:10] == list(range(1, 11))  # below the fork: never left the chain
            assert set(range(1, 14)) <= set(old)
        assert "replaced" in caplog.text or "reorg" in caplog.text
        await all_gone(node)
