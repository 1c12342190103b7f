"""``after=`` against anvil: a block of ten events resumed mid-block, and a reorg that removes it."""

from __future__ import annotations

import logging

import pytest

from ogpu import ChainConfig
from ogpu.events import AttemptedEvent, watch_attempted
from ogpu.events._devnode.nodes import Anvil, event_calldata
from tests.support.devnodes import random_address, take, wait_joined
from tests.support.fakenode import NEXUS
from tests.support.streams import Collector

pytestmark = pytest.mark.anyio
POLL = 0.05


def _attempt_tx(node: Anvil, task: str, payment: int) -> list[object]:
    data = event_calldata("Attempted", task, random_address(), payment)
    return [{"from": node.account, "to": NEXUS, "data": data, "gas": "0x30000"}]


async def _first(node: Anvil, task: str, block: int, count: int) -> list[AttemptedEvent]:
    stream = watch_attempted(task, from_block=block, poll_interval=POLL)
    try:
        return await take(stream, count)
    finally:
        await stream.aclose()


def _block_of_ten(node: Anvil, task: str) -> int:
    with node.one_block():
        txs = [node.emit(NEXUS, "Attempted", task, random_address(), p) for p in range(1, 11)]
    blocks = {int(node.receipt(tx)["blockNumber"], 16) for tx in txs}
    assert len(blocks) == 1
    return blocks.pop()


async def test_resume_mid_block_then_after_a_reorg_that_removed_that_block(
    anvil: Anvil, caplog: pytest.LogCaptureFixture
) -> None:
    ChainConfig.set_rpc(anvil.url)
    task = random_address()
    block = _block_of_ten(anvil, task)
    anvil.mine(1)
    first = await _first(anvil, task, block, 4)
    assert [e.suggested_payment for e in first] == [1, 2, 3, 4]

    # On the same chain, event and pair forms give exactly the rest of the block, then live.
    live: list[int] = []
    for after in (first[-1], (first[-1].block_number, first[-1].log_index)):
        resumed = Collector(watch_attempted(task, after=after, poll_interval=POLL))
        expected = [5, 6, 7, 8, 9, 10, *live]
        assert [e.suggested_payment for e in await resumed.wait_for(len(expected))] == expected
        await wait_joined()
        live.append(11 + len(live))
        anvil.receipt(anvil.emit(NEXUS, "Attempted", task, random_address(), live[-1]))
        got = await resumed.wait_for(len(expected) + 1)
        await resumed.stop()
        assert [e.suggested_payment for e in got] == [*expected, live[-1]]

    # A reorg replaces the block of ten and everything above it with a new branch.
    depth = anvil.block_number() - block + 1
    anvil.rpc("anvil_reorg", depth, [[*_attempt_tx(anvil, task, 31), 0], [*_attempt_tx(anvil, task, 32), 1]])
    assert anvil.rpc("eth_getBlockByNumber", hex(block), False)["hash"] != first[-1].block_hash

    with caplog.at_level(logging.WARNING, logger="ogpu.events"):
        resumed = Collector(watch_attempted(task, after=first[-1], poll_interval=POLL))
        got = await resumed.wait_for(2)
        await wait_joined()
        anvil.receipt(anvil.emit(NEXUS, "Attempted", task, random_address(), 33))
        got = await resumed.wait_for(3)
        await resumed.stop()

    assert [e.suggested_payment for e in got] == [31, 32, 33]
    [warning] = [r.getMessage() for r in caplog.records if "after= names" in r.getMessage()]
    assert f"block {block} ({first[-1].block_hash})" in warning
    assert f"resuming from block {block}" in warning or f"start of block {block}" in warning
