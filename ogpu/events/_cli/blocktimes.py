"""Block timestamps for the command line: each block's header read once, by hash.

The stream yields events without their block's time (the logs do not carry
it); a person reading a catch-up needs it, so ``ogpu-events`` asks for the
headers itself, over its own client, one batch per group of events printed
together. A header that cannot be had is not an error: the event is shown
without a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from ogpu._errors import RpcError
from ogpu.events._net.rpc import JsonRpc

__all__ = ["BlockTimes"]

log = logging.getLogger("ogpu.events")

# A catch-up over a busy range touches many blocks; only recent ones repeat.
_CACHE_SIZE = 4096
# An event is worth more on screen without its time than late.
_LOOKUP_TIMEOUT = 5.0


class BlockTimes:
    """Unix timestamps of blocks by hash, fetched in batches and cached."""

    def __init__(self, client: JsonRpc, *, timeout: float = _LOOKUP_TIMEOUT) -> None:
        self._client = client
        self._timeout = timeout
        self._cache: OrderedDict[str, int] = OrderedDict()

    async def lookup(self, block_hashes: Iterable[str]) -> dict[str, int]:
        """The timestamps of ``block_hashes`` that could be had; one request for all missing."""
        wanted = list(dict.fromkeys(h.lower() for h in block_hashes))
        missing = [h for h in wanted if h not in self._cache]
        if missing:
            try:
                answers = await asyncio.wait_for(self._fetch(missing), self._timeout)
            except (RpcError, asyncio.TimeoutError) as exc:
                log.info("block times unavailable from %s: %s", self._client.masked_url, exc)
                answers = []
            for block_hash, header in zip(missing, answers, strict=False):
                stamp = _timestamp(header)
                if stamp is not None:
                    self._remember(block_hash, stamp)
        found: dict[str, int] = {}
        for block_hash in wanted:
            if block_hash in self._cache:
                self._cache.move_to_end(block_hash)
                found[block_hash] = self._cache[block_hash]
        return found

    async def _fetch(self, block_hashes: list[str]) -> list[Any]:
        calls = [("eth_getBlockByHash", [h, False]) for h in block_hashes]
        return await self._client.batch(calls)

    def _remember(self, block_hash: str, stamp: int) -> None:
        self._cache[block_hash] = stamp
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)


def _timestamp(header: Any) -> int | None:
    """A header's ``timestamp``; None for an error, an unknown block (null) or nonsense."""
    if not isinstance(header, dict):
        return None
    value = header.get("timestamp")
    try:
        return int(value, 16) if isinstance(value, str) else None
    except ValueError:
        return None
