"""The holes an attacker of "exactly once, in chain order" found (issue 16), one test each.

Each test drives the in-memory node into the exact fault of one report and
asserts what the user sees: every event once, in chain order, and a WARNING
where something left the chain. They failed on the stream before the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from ogpu.events import watch_attempted
from tests.fakenode import FakeNode
from tests.test_stream_unit import FAST, SENTINEL, Collector, address, all_gone, streaming, ticks

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
