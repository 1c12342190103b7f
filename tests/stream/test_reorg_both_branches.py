"""Both sides of a reorg reported above the head in one filter answer.

Blocks 42 and 43 are mined with events, then replaced (a 3-block reorg
from block 41) before the stream polls again; the node's filter, like
anvil's, reports the replaced blocks' logs and the new ones in one answer,
above the head the stream believes. The testing kit found this losing the
new branch: the first hash seen for block 42 (the replaced one) became the
stream's claim for that height, the new branch's logs there were dropped as
"another block", and a header pinned by its child's parent link overwrote
the wrong claim unchecked. Now a height for which one answer carries two
block hashes waits for its header; only the logs of the block the chain has
are delivered, the orphans are dropped with a WARNING. ``tests/support/soak.py``
hits the same schedule (seeds 39 and 199 of ``make faults``).
"""

from __future__ import annotations

import pytest

from ogpu.events import watch_attempted
from ogpu.events.testing import FakeNode
from tests.support.streams import FAST, Collector, wait_until

pytestmark = pytest.mark.anyio

T = "0x" + "11" * 20  # the task
P = "0x" + "22" * 20  # the provider


def _attempt(amount: int) -> tuple[str, dict[str, object]]:
    return ("Attempted", {"task": T, "provider": P, "suggested_payment": amount})


async def test_a_new_branch_reported_beside_the_old_one_above_the_head_is_delivered() -> None:
    async with FakeNode(start_block=40) as node:
        seen = Collector(watch_attempted(T, poll_interval=FAST))
        await node.wait_for_watchers()
        node.emit_many([_attempt(41)])
        await seen.wait_for(1)
        # No await from here on: the stream polls only once all of this is on the node.
        node.emit_many([_attempt(420)])
        node.emit_many([_attempt(430)])
        branch = node.reorg(3, {1: [_attempt(4201), _attempt(4202)], 2: [_attempt(4301)]}, length=4)
        node.emit_many([_attempt(999)])
        await wait_until(lambda: any(e.suggested_payment == 999 for e in seen.events), "the last event")
        await seen.stop()
    payments = [e.suggested_payment for e in seen.events]
    assert all(event in seen.events for event in branch), payments
    # The replaced blocks' events are orphans, never delivered; the rest comes in chain order.
    assert payments == [41, 4201, 4202, 4301, 999], payments
