"""confirmations=N against anvil_reorg: what a reorg takes away is never yielded."""

from __future__ import annotations

import asyncio

import pytest

from ogpu import ChainConfig
from ogpu.events import watch_attempted
from ogpu.events._devnode.nodes import Anvil, event_calldata
from tests.support.devnodes import random_address, take, wait_joined
from tests.support.fakenode import NEXUS

pytestmark = pytest.mark.anyio


def _attempt_tx(node: Anvil, task: str, payment: int) -> dict[str, str]:
    data = event_calldata("Attempted", task, random_address(), payment)
    return {"from": node.account, "to": NEXUS, "data": data, "gas": "0x30000"}


async def test_event_reorged_away_before_depth_is_never_yielded_and_its_replacement_is(
    anvil: Anvil,
) -> None:
    ChainConfig.set_rpc(anvil.url)
    task = random_address()
    confirmed = watch_attempted(task, poll_interval=0.05, confirmations=3)
    live = watch_attempted(task, poll_interval=0.05)
    confirmed_events = asyncio.create_task(take(confirmed, 2))
    live_events = asyncio.create_task(take(live, 3))
    await wait_joined(2)

    doomed = anvil.emit(NEXUS, "Attempted", task, random_address(), 1)  # reorged away at depth 2
    doomed_block = int(anvil.receipt(doomed)["blockNumber"], 16)
    anvil.mine(1)
    await asyncio.sleep(0.3)  # several ticks at depth 2 (< 3): nothing confirmed yet
    assert not confirmed_events.done()

    anvil.rpc("anvil_reorg", 2, [[_attempt_tx(anvil, task, 2), 0]])
    assert anvil.block_number() == doomed_block + 1
    anvil.mine(3)
    anvil.emit(NEXUS, "Attempted", task, random_address(), 3)
    anvil.mine(3)

    events = await confirmed_events
    assert [e.suggested_payment for e in events] == [2, 3]
    replacement = anvil.rpc("eth_getBlockByNumber", hex(events[0].block_number), False)
    assert events[0].block_hash == replacement["hash"]
    # Without confirmations the doomed event was seen live, then its replacement.
    assert [e.suggested_payment for e in await live_events] == [1, 2, 3]


async def test_confirmations_hold_events_until_they_are_deep_enough(anvil: Anvil) -> None:
    ChainConfig.set_rpc(anvil.url)
    task = random_address()
    stream = watch_attempted(task, poll_interval=0.05, confirmations=2)
    pending = asyncio.ensure_future(stream.__anext__())
    await wait_joined()
    tx = anvil.emit(NEXUS, "Attempted", task, random_address(), 7)
    mined_at = int(anvil.receipt(tx)["blockNumber"], 16)
    anvil.mine(1)
    await asyncio.sleep(0.3)
    assert not pending.done(), "one block on top is not two confirmations"
    anvil.mine(1)
    event = await asyncio.wait_for(pending, 10)
    assert event.suggested_payment == 7
    assert event.block_number == mined_at
    await stream.aclose()


async def test_history_with_confirmations_stops_at_the_confirmed_head(anvil: Anvil) -> None:
    ChainConfig.set_rpc(anvil.url)
    task = random_address()
    first = anvil.block_number() + 1
    for payment in range(3):
        anvil.receipt(anvil.emit(NEXUS, "Attempted", task, random_address(), payment))
    # The last event sits 0 blocks deep: with confirmations=1 it waits for one more block.
    stream = watch_attempted(task, from_block=first, poll_interval=0.05, confirmations=1)
    got = await take(stream, 2)
    assert [e.suggested_payment for e in got] == [0, 1]
    pending = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.3)
    assert not pending.done()
    anvil.mine(1)
    assert (await asyncio.wait_for(pending, 10)).suggested_payment == 2
    await stream.aclose()
