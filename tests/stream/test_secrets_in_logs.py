"""No log record shows an API key of the node's URL, ours or httpx's/httpcore's, at any level (issue 21.4)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import httpx
import pytest

from ogpu import ChainConfig
from ogpu.events import watch_attempted
from tests.support.jsonrpc_server import jsonrpc_server

pytestmark = pytest.mark.anyio

KEY = "SECRETKEY0123456789abcdef"
QUERY_KEY = "QUERYSECRET42xyz"
PASSWORD = "hunter2pass"


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {self.format(record)}")


@contextlib.contextmanager
def _root_at_debug() -> Iterator[_Everything]:
    """What ``logging.basicConfig(level=logging.DEBUG)`` does: every record of every logger."""
    root = logging.getLogger()
    handler = _Everything()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def _some_polls(seconds: float) -> None:
    async def follow() -> None:
        async for _ in watch_attempted("0x" + "ab" * 20, poll_interval=0.02):
            pass

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(follow(), seconds)


async def test_no_record_at_any_level_shows_the_key_of_the_url_the_stream_polls() -> None:
    with jsonrpc_server() as base, _root_at_debug() as seen:
        host = base.removeprefix("http://")
        ChainConfig.set_rpc(f"http://user:{PASSWORD}@{host}/v3/{KEY}?apikey={QUERY_KEY}")

        await _some_polls(0.5)

    assert any("httpx" in line and "HTTP Request: POST" in line for line in seen.lines), seen.lines[:5]
    assert any(line.startswith("httpcore") for line in seen.lines)
    leaks = [line for line in seen.lines if KEY in line or QUERY_KEY in line or PASSWORD in line]
    assert leaks == []
    # The lines are kept, masked: a service still sees its requests.
    assert any(f"{host}/v3/***?***" in line for line in seen.lines)


async def test_another_client_s_urls_are_logged_as_they_are() -> None:
    with jsonrpc_server() as base, _root_at_debug() as seen:
        host = base.removeprefix("http://")
        ChainConfig.set_rpc(f"http://{host}/v3/{KEY}")
        await _some_polls(0.2)
        mine = f"http://{host}/mine/LOOKS0LIKE0A0KEY123"
        async with httpx.AsyncClient() as client:
            await client.post(mine, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})

    assert any(mine in line for line in seen.lines)
    assert not any(KEY in line for line in seen.lines)
