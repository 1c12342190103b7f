"""``after=`` and ``event.position`` against the in-memory node: resume exactly where a watcher stopped.

A block can hold many events; these tests stop a watcher in the middle of
one and resume it, and assert that the second run yields exactly the rest:
nothing of what the first run yielded, nothing skipped, then live events.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from ogpu import ChainConfig
from ogpu.events import EventPosition, watch_attempted, watch_nexus
from ogpu.events._stream import memory
from ogpu.events._stream.resume import ResumePoint
from ogpu.types import InvalidArgumentError
from tests.support.fakenode import FakeNode, mounted
from tests.support.streams import (
    FAST,
    SENTINEL,
    WATCHERS,
    Collector,
    address,
    all_gone,
    block_of_ten,
    first_events,
)

pytestmark = pytest.mark.anyio

HASH = "0x" + "ab" * 32


@pytest.fixture
def node() -> Iterator[FakeNode]:
    fake = FakeNode()
    ChainConfig.set_rpc(fake.url)
    with mounted(fake):
        yield fake


async def _resumed(
    node: FakeNode, start: Callable[[], AsyncGenerator[Any, None]], task: str, live: list[int]
) -> list[int]:
    """What a resumed watcher yields, through live events ``live`` and a sentinel."""
    c = Collector(start())
    await c.until(lambda: len(c.events) > 0, "the rest of the block")
    for payment in live:
        node.add_log("Attempted", task, address(), payment)
    node.mine()
    node.add_log("Attempted", task, address(), SENTINEL)
    node.mine()
    await c.until_sentinel()
    await c.stop()
    return [e.suggested_payment for e in c.events]


@pytest.mark.parametrize("form", ["event", "position", "text", "pair"])
async def test_resume_after_part_of_a_block_yields_exactly_the_rest_then_live(
    node: FakeNode, form: str
) -> None:
    task = address()
    block = block_of_ten(node, task)
    first = await first_events(watch_attempted(task, from_block=block, poll_interval=FAST), 4)
    assert [e.suggested_payment for e in first] == [1, 2, 3, 4]
    last = first[-1]
    after: Any = {
        "event": last,
        "position": last.position,
        "text": EventPosition.parse(str(last.position)),
        "pair": (last.block_number, last.log_index),
    }[form]

    got = await _resumed(node, lambda: watch_attempted(task, after=after, poll_interval=FAST), task, [11, 12])

    assert got == [5, 6, 7, 8, 9, 10, 11, 12, SENTINEL]
    await all_gone(node)


async def test_resume_after_the_last_event_of_a_block_starts_with_the_next_block(node: FakeNode) -> None:
    task = address()
    block = block_of_ten(node, task)
    node.add_log("Attempted", task, address(), 11)
    node.mine()
    first = await first_events(watch_attempted(task, from_block=block, poll_interval=FAST), 10)

    got = await _resumed(node, lambda: watch_attempted(task, after=first[-1], poll_interval=FAST), task, [12])

    assert got == [11, 12, SENTINEL]


async def test_resume_after_a_position_above_the_head_waits_for_it_and_skips_what_precedes_it(
    node: FakeNode,
) -> None:
    """A pair may name a block not mined yet: the live stream skips that block's events up to it."""
    task = address()
    node.mine(3)
    c = Collector(watch_attempted(task, after=(node.head + 1, 1), poll_interval=FAST))
    for payment in (1, 2, 3):
        node.add_log("Attempted", task, address(), payment)
    node.mine()
    node.add_log("Attempted", task, address(), SENTINEL)
    node.mine()
    await c.until_sentinel()
    await c.stop()
    assert [e.suggested_payment for e in c.events] == [3, SENTINEL]


async def test_watch_nexus_resumes_after_an_event_of_another_kind(node: FakeNode) -> None:
    task = address()
    node.mine(2)
    node.add_log("TaskStatusChanged", task, 1)
    node.add_log("Attempted", task, address(), 1)
    node.add_log("TaskStatusChanged", task, 2)
    block = node.mine()
    first = await first_events(watch_nexus(from_block=block, poll_interval=FAST), 1)
    assert first[0].event_name == "TaskStatusChanged"

    c = Collector(watch_nexus(after=first[0], poll_interval=FAST))
    await c.until(lambda: len(c.events) == 2, "the rest of the block")
    await c.stop()
    assert [(e.event_name, e.log_index) for e in c.events] == [("Attempted", 1), ("TaskStatusChanged", 2)]


async def test_a_reorg_that_removed_the_after_block_resumes_from_the_fork_and_names_the_lost_events(
    node: FakeNode, caplog: pytest.LogCaptureFixture
) -> None:
    task = address()
    block = block_of_ten(node, task)
    node.mine(1)
    first = await first_events(watch_attempted(task, from_block=block, poll_interval=FAST), 3)
    lost = first[-1]
    # The block of ten and the one above it are replaced; the new branch has
    # other events at those heights.
    node.reorg(2, {0: [("Attempted", task, address(), 21)], 1: [("Attempted", task, address(), 22)]})
    assert node.blocks[block].hash != lost.block_hash

    with caplog.at_level(logging.WARNING, logger="ogpu.events"):
        got = await _resumed(node, lambda: watch_attempted(task, after=lost, poll_interval=FAST), task, [23])

    assert got == [21, 22, 23, SENTINEL]
    [warning] = [r.getMessage() for r in caplog.records if "after= names" in r.getMessage()]
    assert f"block {block}" in warning and lost.block_hash in warning
    assert f"the chains part after block {block - 1}: resuming from block {block}" in warning
    for event in first:  # the three events the user handled on the old branch, by transaction
        assert event.transaction_hash in warning


def forgotten_branch(node: FakeNode) -> tuple[str, int]:
    """A node that keeps no side blocks, and a task with two events in the block a watcher resumes from."""
    node.orphans_by_hash = False
    task = address()
    node.mine(2)
    node.add_log("Attempted", task, address(), 1)
    node.add_log("Attempted", task, address(), 2)
    block = node.mine()
    node.mine(2)
    return task, block


async def test_a_node_that_forgot_the_old_block_is_helped_by_what_this_process_followed(
    node: FakeNode, caplog: pytest.LogCaptureFixture
) -> None:
    task, block = forgotten_branch(node)
    first = await first_events(watch_attempted(task, from_block=block, poll_interval=FAST), 1)
    node.reorg(4, {0: [("Attempted", task, address(), 20)], 1: [("Attempted", task, address(), 21)]})

    with caplog.at_level(logging.WARNING, logger="ogpu.events"):
        got = await _resumed(
            node, lambda: watch_attempted(task, after=first[0], poll_interval=FAST), task, []
        )

    # The stream that yielded the first event pinned the old branch's blocks:
    # the highest of them still on the chain is where the chains part, and the
    # new branch is read from there, payment 20 included.
    assert got == [20, 21, SENTINEL]
    [warning] = [r.getMessage() for r in caplog.records if "after= names" in r.getMessage()]
    assert f"the chains part after block {block - 2}: resuming from block {block - 1}" in warning
    assert f"every event in blocks {block - 1}..{block - 1}" in warning
    assert f"block {block} index 0" in warning


async def test_a_node_and_a_process_that_forgot_the_old_block_resume_from_its_height_and_say_so(
    node: FakeNode, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    task, block = forgotten_branch(node)
    first = await first_events(watch_attempted(task, from_block=block, poll_interval=FAST), 1)
    node.reorg(4, {0: [("Attempted", task, address(), 20)], 1: [("Attempted", task, address(), 21)]})
    # As in another process: nothing of the old branch is remembered.
    monkeypatch.setattr(memory, "_pins", {})

    with caplog.at_level(logging.WARNING, logger="ogpu.events"):
        got = await _resumed(
            node, lambda: watch_attempted(task, after=first[0], poll_interval=FAST), task, []
        )

    # Block `block - 1` (payment 20) is on the new branch below the height resumed from.
    assert got == [21, SENTINEL]
    [warning] = [r.getMessage() for r in caplog.records if "after= names" in r.getMessage()]
    assert "where the chains part is unknown" in warning
    assert f"resuming from the start of block {block}" in warning
    assert f"block {block} index 0" in warning
    # Events handled below it may have left the chain as well: every block a reorg could reach is named.
    assert f"possibly every event in blocks 0..{block - 1}" in warning


async def test_a_pair_is_not_checked_against_the_chain(node: FakeNode) -> None:
    task = address()
    block = block_of_ten(node, task)
    node.mine(1)
    node.reorg(2, {0: [("Attempted", task, address(), p) for p in (21, 22, 23)]})

    got = await _resumed(node, lambda: watch_attempted(task, after=(block, 0), poll_interval=FAST), task, [])

    assert got == [22, 23, SENTINEL]
    assert node.count("eth_getBlockByHash") == 0


# --- event.position ---


async def test_every_event_has_a_position_that_round_trips_as_text(node: FakeNode) -> None:
    task = address()
    block = block_of_ten(node, task)
    events = await first_events(watch_attempted(task, from_block=block, poll_interval=FAST), 10)
    positions = [e.position for e in events]
    assert positions == sorted(positions) and len(set(positions)) == 10
    for event, position in zip(events, positions, strict=True):
        assert (position.block_number, position.log_index, position.block_hash) == (
            event.block_number,
            event.log_index,
            event.block_hash,
        )
        assert EventPosition.parse(str(position)) == position
        assert EventPosition.parse(str(position)).block_hash == event.block_hash


def test_positions_compare_in_chain_order() -> None:
    assert EventPosition(7, 9, HASH) < EventPosition(8, 0, HASH) < EventPosition(8, 1)
    assert EventPosition(8, 1, HASH) == EventPosition(8, 1)  # the same place, hash or not
    assert str(EventPosition(8, 1)) == "8:1"
    assert str(EventPosition(8, 1, HASH.upper().replace("0X", "0x"))) == f"8:1:{HASH}"
    with pytest.raises(AttributeError):
        EventPosition(1, 2).block_number = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "text", ["", "7", "7:", "-1:0", "7:-1", "a:1", "7:1:0x12", "7:1:" + HASH + ":x", "7.0:1", "٣:1"]
)
def test_a_position_that_does_not_parse_is_a_typed_error(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        EventPosition.parse(text)


@pytest.mark.parametrize(
    "args", [(-1, 0), (0, -1), (True, 0), (0, False), (1.0, 0), ("1", 0), (1, 0, "0x12"), (1, 0, 5)]
)
def test_a_malformed_position_is_a_typed_error(args: tuple[Any, ...]) -> None:
    with pytest.raises(InvalidArgumentError):
        EventPosition(*args)


# --- bad input, at call time ---


@pytest.mark.parametrize("watcher", sorted(WATCHERS))
@pytest.mark.parametrize(
    "after",
    [(-1, 0), (1, -2), (True, 0), (1, None), (1, 2, 3), "5:1", 5, object(), {"block": 1}],
    ids=repr,
)
def test_a_malformed_after_fails_when_called(watcher: str, after: object) -> None:
    with pytest.raises(InvalidArgumentError, match=r"after|block_number|log_index"):
        WATCHERS[watcher](address(), after=after)
    with pytest.raises(InvalidArgumentError):
        watch_nexus(after=after)  # type: ignore[arg-type]


@pytest.mark.parametrize("watcher", sorted(WATCHERS))
def test_after_with_from_block_fails_when_called(watcher: str) -> None:
    with pytest.raises(InvalidArgumentError, match="after= and from_block="):
        WATCHERS[watcher](address(), after=(5, 1), from_block=3)
    with pytest.raises(InvalidArgumentError, match="after= and from_block="):
        watch_nexus(after=EventPosition(5, 1, HASH), from_block=0)


def test_what_a_resume_point_covers() -> None:
    """Events of the position's block on another branch (another hash) were never handled: not covered."""
    point = ResumePoint(7, EventPosition(7, 2, HASH))
    other = "0x" + "cd" * 32

    def event(block: int, index: int, block_hash: str = HASH) -> SimpleNamespace:
        return SimpleNamespace(block_number=block, log_index=index, block_hash=block_hash)

    assert [point.covers(event(7, i)) for i in range(4)] == [True, True, True, False]
    assert not point.covers(event(7, 0, other))
    assert point.covers(event(6, 9, other)) and not point.covers(event(8, 0))
    pair = ResumePoint(7, EventPosition(7, 2))
    assert pair.covers(event(7, 2, other)) and not pair.covers(event(7, 3, other))
    assert not ResumePoint(3, None).covers(event(3, 0))
