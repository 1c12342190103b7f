"""A provider that caps ``eth_getLogs`` the way hosted providers do, as an httpx transport.

The wordings are those providers answer with (collected from their users'
bug reports); each profile refuses a range over its cap, or an answer over
its results cap, with that provider's code and message, and counts what it
refused. The chain is synthetic: one Attempted log every ``every`` blocks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.fakenode import NEXUS, raw_log

TASK = "0x" + "5a" * 20

# name -> (code, message); {limit} is the cap, {first}/{last} the range that would be taken.
BLOCK_CAPS: dict[str, tuple[int, str]] = {
    "erigon": (-32005, "query exceeds max block range {limit}"),
    "quicknode": (-32614, "eth_getLogs is limited to a {limit:,} range"),
    "alchemy": (
        -32600,
        "You can make eth_getLogs requests with up to a {limit} block range. "
        "Based on your parameters, this block range should work: [{first}, {last}]",
    ),
    "infura": (-32602, "range 1000000 exceeds limit of {limit}"),
    "ankr": (-32602, "maximum [from, to] blocks distance: {limit}"),
    "bsc": (-32000, "exceed maximum block range: {limit}"),
    "morph": (
        -32000,
        "block range is larger than max block range, block range = 99999, max block range = {limit}",
    ),
}
# Caps that name no number: found by searching.
UNNAMED_CAPS: dict[str, tuple[int, str]] = {
    "geth-fork": (-32000, "block range is bigger than maxBlockRange"),
    "candle": (-32600, "block range too high"),
    "plain": (-32005, "block range too large"),
}
RESULTS_CAPS: dict[str, tuple[int, str]] = {
    "infura-results": (
        -32005,
        "query returned more than {limit} results. Try with this block range [{first}, {last}].",
    ),
    "results-no-range": (-32005, "query returned more than {limit} results"),
}


@dataclass
class CappingProvider:
    """Answers eth_getLogs over a synthetic chain, refusing what the profile's cap forbids."""

    code: int
    message: str
    max_range: int | None = None
    max_results: int | None = None
    every: int = 10
    head: int = 12_499
    asked: list[tuple[int, int]] = field(default_factory=list)
    refused: int = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def logs(self, first: int, last: int) -> list[dict[str, Any]]:
        start = -(-first // self.every) * self.every
        return [
            raw_log("Attempted", TASK, TASK, n, block=n, log_index=0, address=NEXUS)
            for n in range(start, min(last, self.head) + 1, self.every)
        ]

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        query = body["params"][0]
        first, last = int(query["fromBlock"], 16), int(query["toBlock"], 16)
        self.asked.append((first, last))
        if self.max_range is not None and last - first + 1 > self.max_range:
            return self._refuse(body["id"], self.max_range, first, first + self.max_range - 1)
        found = self.logs(first, last)
        if self.max_results is not None and len(found) > self.max_results:
            fits = max(first, int(found[self.max_results]["blockNumber"], 16) - 1)
            return self._refuse(body["id"], self.max_results, first, fits)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": found})

    def _refuse(self, request_id: int, limit: int, first: int, last: int) -> httpx.Response:
        self.refused += 1
        message = self.message.format(limit=limit, first=hex(first), last=hex(last))
        error = {"code": self.code, "message": message}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": request_id, "error": error})
