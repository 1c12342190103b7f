"""Several endpoints, one stream: stick, switch for a reason, go back, never lose or repeat an event.

Every endpoint here is a ``Front`` over one in-memory chain (``fronts.py``);
each test breaks one the way a real one breaks and checks what a user sees:
the events, exactly once and in order, the log line that names the switch,
and which endpoint did the work.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from ogpu.events import health, watch_attempted
from ogpu.events._net import choice as _choice
from ogpu.events._stream.hub import Hub, active_hubs
from ogpu.types import RpcTransportError
from tests.stream.fronts import fronts
from tests.support.fakenode import FakeNode
from tests.support.streams import wait_until

pytestmark = pytest.mark.anyio

FAST = 0.01
rng = random.Random(18)
TASK = "0x" + rng.randbytes(20).hex()
PROVIDER = "0x" + rng.randbytes(20).hex()
STREAM_METHODS = ("eth_newFilter", "eth_getFilterChanges", "eth_getLogs")


class Collector:
    """Runs a watcher in a task and keeps the suggested payments it yields."""

    def __init__(self, gen: AsyncGenerator[Any, None]) -> None:
        self.got: list[int] = []
        self.error: BaseException | None = None
        self._gen = gen
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in self._gen:
                self.got.append(event.suggested_payment)
        except Exception as exc:
            self.error = exc

    async def until(self, count: int, timeout: float = 10.0) -> None:
        await wait_until(lambda: len(self.got) >= count or self.error is not None, f"{count} events", timeout)
        if self.error is not None:
            raise self.error

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self._gen.aclose()


def emit(node: FakeNode, *payments: int) -> None:
    """One block per payment, each with one Attempted event for TASK."""
    for payment in payments:
        node.add_log("Attempted", TASK, PROVIDER, payment)
        node.mine()


async def started(node: FakeNode) -> tuple[Collector, Hub]:
    watcher = Collector(watch_attempted(TASK, poll_interval=FAST))
    await wait_until(lambda: any(hub.filter_id is not None for hub in active_hubs()), "the stream to start")
    emit(node, 0)
    await watcher.until(1)
    [hub] = active_hubs()
    return watcher, hub


async def ticks(hub: Hub, count: int) -> None:
    target = hub.ticks + count
    await wait_until(lambda: hub.ticks >= target, f"{count} ticks")


async def test_a_healthy_first_endpoint_does_all_the_work() -> None:
    node = FakeNode()
    with fronts(node, 3) as (a, b, c):
        watcher, hub = await started(node)
        emit(node, 1, 2, 3)
        await watcher.until(4)
        await ticks(hub, 30)
        await watcher.close()
    assert watcher.got == [0, 1, 2, 3]
    assert a.served("eth_getFilterChanges") >= 30
    # The standbys were only asked which chain they serve and where their head is.
    for standby in (b, c):
        assert standby.served() > 0
        assert standby.served(*STREAM_METHODS) == 0
    assert node.filters == {}


@pytest.mark.parametrize("fault", ["HTTP 503", "connection refused"])
async def test_a_failing_endpoint_is_left_and_no_event_is_lost_or_repeated(
    fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    node = FakeNode()
    with fronts(node, 3) as (a, b, _c), caplog.at_level(logging.INFO, "ogpu.events"):
        watcher, _hub = await started(node)
        if fault == "HTTP 503":
            a.status = 503
        else:
            a.down = True
        emit(node, 1, 2, 3)  # mined while the stream finds out: the gap a new filter must read
        await watcher.until(4)
        emit(node, 4, 5)
        await watcher.until(6)
        a.status, a.down = None, False  # back, so its old filter can be uninstalled
        await watcher.close()
    assert watcher.got == [0, 1, 2, 3, 4, 5]
    assert b.served("eth_newFilter") >= 1
    assert f"switched from endpoint {a.url} to {b.url}" in caplog.text
    assert node.filters == {}


async def test_a_429_cools_only_that_endpoint_and_the_next_one_is_asked_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = FakeNode()
    with fronts(node, 2) as (a, b), caplog.at_level(logging.WARNING, "ogpu.events"):
        watcher, hub = await started(node)
        a.status, a.retry_after = 429, "30"
        emit(node, 1)
        await watcher.until(2)
        asked = a.requests
        emit(node, 2, 3)
        await watcher.until(4)
        await ticks(hub, 20)
        # Nothing went back to the rate-limited endpoint during its Retry-After.
        assert a.requests == asked
        [stream] = health()
        a.status = None
        await watcher.close()
    assert watcher.got == [0, 1, 2, 3]
    # The one in use first; the cooling one says why.
    assert [(e.url, e.state) for e in stream.endpoints] == [(b.url, "active"), (a.url, "cooling")]
    assert stream.endpoints[1].last_error == "HTTP 429 Too Many Requests"
    assert stream.endpoints[0].last_error is None
    assert stream.endpoints[0].head == stream.head == node.head
    assert stream.cursor == node.head and stream.lag_blocks == 0
    # The stream itself never waited: no retry line, only the switch.
    assert "retrying in" not in caplog.text
    assert f"switched from endpoint {a.url} to {b.url}: HTTP 429" in caplog.text


async def test_an_endpoint_lagging_more_than_a_few_blocks_is_left() -> None:
    node = FakeNode()
    with fronts(node, 2) as (a, b):
        watcher, hub = await started(node)
        a.lag = 5
        emit(node, 1, 2, 3, 4, 5, 6)
        await watcher.until(7)
        await wait_until(lambda: hub.pool is not None and hub.pool.serving == 1, "the switch to b")
        emit(node, 7)
        await watcher.until(8)
        await watcher.close()
    assert watcher.got == list(range(8))
    assert b.served("eth_getFilterChanges") > 0


async def test_a_stalled_head_is_left_when_another_endpoint_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_choice, "STALL_AFTER", 0.3)
    node = FakeNode()
    with fronts(node, 2) as (a, _b):
        watcher, hub = await started(node)
        node.mine(10)
        await ticks(hub, 3)
        frozen = node.head  # its head stays here: within max_lag of the chain's, but not moving

        def stall() -> None:
            a.lag = node.head - frozen

        stall()
        emit(node, 1)
        stall()
        await asyncio.sleep(0.4)
        emit(node, 2)
        stall()
        await wait_until(lambda: hub.pool is not None and hub.pool.serving == 1, "the switch to b")
        await watcher.until(3)
        await watcher.close()
    assert watcher.got == [0, 1, 2]


async def test_the_preferred_endpoint_is_gone_back_to_once_healthy(caplog: pytest.LogCaptureFixture) -> None:
    node = FakeNode()
    with fronts(node, 2) as (a, b), caplog.at_level(logging.INFO, "ogpu.events"):
        watcher, hub = await started(node)
        a.down = True
        emit(node, 1)
        await watcher.until(2)
        assert hub.pool is not None and hub.pool.serving == 1
        a.down = False
        await wait_until(lambda: hub.pool is not None and hub.pool.serving == 0, "the way back to a", 10)
        emit(node, 2, 3)
        await watcher.until(4)
        await watcher.close()
    assert watcher.got == [0, 1, 2, 3]
    assert f"switched back to endpoint {a.url} from {b.url}" in caplog.text
    assert node.filters == {}


@pytest.mark.parametrize("wrong", ["chain id", "block 0"])
async def test_an_endpoint_of_another_chain_is_excluded_and_never_followed(
    wrong: str, caplog: pytest.LogCaptureFixture
) -> None:
    node = FakeNode()
    other = FakeNode(chain_id=31337) if wrong == "chain id" else FakeNode()
    if wrong == "block 0":
        other.restart()  # a dev node of its own: same chain id, another block 0
    with fronts(node, 3) as (a, b, c), caplog.at_level(logging.WARNING, "ogpu.events"):
        b.node = other
        watcher, _hub = await started(node)
        a.down = True
        emit(node, 1, 2)
        await watcher.until(3)
        [stream] = health()
        states = {e.url: e.state for e in stream.endpoints}
        a.down = False
        await watcher.close()
    assert watcher.got == [0, 1, 2]
    assert states == {a.url: "cooling", b.url: "excluded", c.url: "active"}
    assert f"endpoint {b.url} excluded" in caplog.text
    assert b.served(*STREAM_METHODS) == 0
    assert c.served("eth_newFilter") >= 1


async def test_when_every_endpoint_is_down_the_error_names_each() -> None:
    node = FakeNode()
    with fronts(node, 2) as (a, b):
        a.down = b.down = True
        watcher = Collector(watch_attempted(TASK, poll_interval=FAST))
        await wait_until(lambda: watcher.error is not None, "the startup error", 10)
        await watcher.close()
    assert isinstance(watcher.error, RpcTransportError)
    message = str(watcher.error)
    assert a.url in message and b.url in message
    assert "connection refused" in message


async def test_a_lagging_replacement_is_not_believed_for_blocks_it_has_not_reached() -> None:
    node = FakeNode()
    with fronts(node, 2) as (a, b):
        watcher, hub = await started(node)
        node.mine(10)
        await ticks(hub, 3)
        a.down = True
        b.lag = 5  # the only endpoint left knows nothing of the next blocks: eth_getLogs answers []
        emit(node, 1, 2, 3)
        await ticks(hub, 30)
        assert watcher.got == [0]  # nothing yet, and nothing skipped: the cursor waits below them
        b.lag = 0
        await watcher.until(4)
        a.down = False
        await watcher.close()
    assert watcher.got == [0, 1, 2, 3]


async def test_logs_by_block_hash_come_from_an_endpoint_that_has_the_block() -> None:
    # A lagging endpoint answers eth_getLogs {"blockHash"} of a block it has not
    # reached with [] (as of its head): taken as "no events there", the after=
    # check's WARNING left a handled event unnamed (simulation seed 1000490).
    from ogpu.events._net.endpoints import open_client

    node = FakeNode()
    with fronts(node, 2) as (a, b):
        node.mine(3)
        emit(node, 7)
        block = node.blocks[-1]
        node.mine(1)
        a.lag = 4  # preferred, and behind that block
        client = open_client((a.url, b.url))
        try:
            logs = await client.call("eth_getLogs", [{"address": node.nexus, "blockHash": block.hash}])
        finally:
            await client.aclose()
    assert [int(raw["blockNumber"], 16) for raw in logs] == [block.number]
