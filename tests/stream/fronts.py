"""Several endpoints of one in-memory chain: a ``Front`` per URL over one ``FakeNode``.

Each front is what a user's second or third RPC URL is: the same chain,
reached its own way, with faults of its own. A front can be down
(connection refused), answer HTTP 503, rate-limit with ``Retry-After``, or
lag the chain by some blocks (it then reports that lower head and knows no
block above it). It counts the JSON-RPC methods it served, so a test can
see which endpoint did the work.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from ogpu.chain import ChainConfig
from ogpu.events._net import rpc as _rpc
from tests.fakenode import FakeNode

__all__ = ["Front", "fronts"]


class Front(httpx.AsyncBaseTransport):
    """One URL in front of the shared node, with its own faults."""

    def __init__(self, node: FakeNode, url: str) -> None:
        self.node = node
        self.url = url
        self.down = False
        self.status: int | None = None  # answer every request with this HTTP status
        self.retry_after: str | None = None  # sent with a 429
        self.lag = 0  # blocks behind the chain's head
        self.methods: list[str] = []  # every JSON-RPC method served, in order
        self.requests = 0  # HTTP requests that reached this URL, answered or not

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        await asyncio.sleep(0)  # real I/O yields to other tasks; so must this
        self.requests += 1
        if self.down:
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except ConnectionRefusedError as refused:
                raise httpx.ConnectError("connection refused", request=request) from refused
        if self.status is not None:
            headers = {"retry-after": self.retry_after} if self.retry_after is not None else {}
            return httpx.Response(self.status, text="busy", headers=headers)
        body = json.loads(request.content)
        items = body if isinstance(body, list) else [body]
        self.methods.extend(str(item.get("method")) for item in items)
        if self.lag:
            self.node.behind(self.lag, 1)  # this request only: the node serves it at once
        try:
            response = self.node(request)
        finally:
            self.node._answered()
        if self.lag and response.status_code == 200:
            response = self._without_unreached(items, response, self.node.head - self.lag)
        return response

    @staticmethod
    def _without_unreached(
        items: list[dict[str, object]], response: httpx.Response, head: int
    ) -> httpx.Response:
        """A node behind answers eth_getLogs with nothing of blocks it has not reached."""
        answer = response.json()
        answers = answer if isinstance(answer, list) else [answer]
        asked = {item.get("id"): item.get("method") for item in items}
        for entry in answers:
            if asked.get(entry.get("id")) == "eth_getLogs" and isinstance(entry.get("result"), list):
                entry["result"] = [raw for raw in entry["result"] if int(raw["blockNumber"], 16) <= head]
        return httpx.Response(200, json=answer)

    def served(self, *methods: str) -> int:
        """How many calls of ``methods`` (any if none named) this front served."""
        return sum(1 for m in self.methods if not methods or m in methods)


@contextmanager
def fronts(node: FakeNode, count: int) -> Iterator[list[Front]]:
    """``count`` fronts over ``node``, set as the current chain's RPC URLs in order of preference."""
    made = [Front(node, f"http://127.0.0.1:{9100 + i}/ep{i}") for i in range(count)]
    for front in made:
        _rpc.FAKE_TRANSPORTS[front.url] = front
    ChainConfig.set_rpc([front.url for front in made], "mainnet")
    try:
        yield made
    finally:
        for front in made:
            _rpc.FAKE_TRANSPORTS.pop(front.url, None)
