"""History read ahead: the next chunk's request in flight while one is decoded, and no further.

The reader is driven over an ``httpx.MockTransport`` whose answers the test
can hold back, so what is in flight at each moment is exact; the watcher
tests use the in-memory node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from ogpu.events._net.ranges import READ_AHEAD_CHUNKS, Chunk, LogRangeReader
from ogpu.events._net.rpc import RpcClient
from ogpu.types import RpcResponseError
from tests.support.fakenode import NEXUS, URL, raw_log
from tests.support.streams import wait_until

pytestmark = pytest.mark.anyio

TASK = "0x" + "12" * 20
BLOCKS = 100  # one Attempted log in each block 1..BLOCKS


Answer = Callable[[int, int], Awaitable[Any]]


class Node:
    """Answers eth_getLogs over ``first..last`` through ``answer``; records every range asked for."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.asked: list[tuple[int, int]] = []
        self.cancelled: list[tuple[int, int]] = []
        self._answer = answer or self.logs

    @staticmethod
    async def logs(first: int, last: int) -> Any:
        return [
            raw_log("Attempted", TASK, TASK, n, block=n, log_index=0) for n in range(max(first, 1), last + 1)
        ]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        query = body["params"][0]
        first, last = int(query["fromBlock"], 16), int(query["toBlock"], 16)
        self.asked.append((first, last))
        try:
            result = await self._answer(first, last)
        except asyncio.CancelledError:
            self.cancelled.append((first, last))
            raise
        if isinstance(result, dict):  # a JSON-RPC error object
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "error": result})
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": result})


@contextlib.asynccontextmanager
async def reading(
    node: Node, first: int = 0, last: int = BLOCKS
) -> AsyncIterator[AsyncGenerator[Chunk, None]]:
    client = RpcClient(URL, transport=httpx.MockTransport(node.handle))
    chunks = LogRangeReader(client, NEXUS).read_ahead(first, last)
    try:
        async with contextlib.aclosing(chunks):
            yield chunks
    finally:
        await client.aclose()


async def turns(count: int = 50) -> None:
    """Let every other task run as far as it can."""
    for _ in range(count):
        await asyncio.sleep(0)


async def test_the_next_chunk_is_asked_for_while_one_is_held_and_no_further() -> None:
    node = Node()
    async with reading(node) as chunks:
        end, _ = await anext(chunks)
        # Holding the first chunk: the second is asked for meanwhile ...
        await wait_until(lambda: len(node.asked) == 1 + READ_AHEAD_CHUNKS, "the next chunk's request")
        assert node.asked[1][0] == end + 1
        # ... and nothing beyond it, however long this chunk is held.
        await turns()
        assert len(node.asked) == 1 + READ_AHEAD_CHUNKS
        await anext(chunks)
        await wait_until(lambda: len(node.asked) == 2 + READ_AHEAD_CHUNKS, "the chunk after")


async def test_every_block_is_read_once_in_order() -> None:
    node = Node()
    async with reading(node) as chunks:
        got = [(end, logs) async for end, logs in chunks]
    ends = [end for end, _ in got]
    assert ends == sorted(ends) and ends[-1] == BLOCKS
    assert [first for first, _ in node.asked] == [0, *(end + 1 for end in ends[:-1])]
    blocks = [int(raw["blockNumber"], 16) for _, logs in got for raw in logs]
    assert blocks == list(range(1, BLOCKS + 1))


async def test_a_range_cap_met_ahead_still_reads_every_block_once() -> None:
    async def capped(first: int, last: int) -> Any:
        if last - first + 1 > 5:
            return {"code": -32005, "message": "block range too large, max is 5 blocks"}
        return await Node.logs(first, last)

    node = Node(capped)
    async with reading(node) as chunks:
        blocks = [int(raw["blockNumber"], 16) async for _, logs in chunks for raw in logs]
    assert blocks == list(range(1, BLOCKS + 1))


async def test_an_error_ahead_comes_after_the_chunks_before_it() -> None:
    async def failing(first: int, last: int) -> Any:
        if first > 0:
            return {"code": -32602, "message": "invalid argument 0: bad query"}
        return await Node.logs(first, last)

    async with reading(Node(failing)) as chunks:
        end, logs = await anext(chunks)
        assert [int(raw["blockNumber"], 16) for raw in logs] == list(range(1, end + 1))
        with pytest.raises(RpcResponseError, match="bad query"):
            await anext(chunks)


async def test_leaving_mid_read_cancels_the_request_in_flight_and_leaves_no_task() -> None:
    never = asyncio.Event()

    async def stalling(first: int, last: int) -> Any:
        if first > 0:
            await never.wait()
        return await Node.logs(first, last)

    node = Node(stalling)
    before = asyncio.all_tasks()
    async with reading(node) as chunks:
        await anext(chunks)
        await wait_until(lambda: len(node.asked) == 2, "the next chunk's request")
    # Closed: the request ahead was cancelled, and awaited, before aclose returned.
    assert node.cancelled == [node.asked[1]]
    assert asyncio.all_tasks() == before
