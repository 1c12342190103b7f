"""``ogpu.events.health()``: what a readiness check sees of the running streams."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from ogpu.events import EndpointHealth, StreamHealth, health, watch_attempted
from ogpu.events.testing import FakeNode

TASK = "0x" + "ab" * 20
PROVIDER = "0x" + "cd" * 20
KEY = "0123456789abcdef0123"


async def _drain(events: AsyncGenerator[Any, None], into: list[Any]) -> None:
    async with contextlib.aclosing(events):
        async for event in events:
            into.append(event)


async def _until(check: Any, what: str) -> None:
    for _ in range(2_000):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never: {what}")


@pytest.mark.anyio
async def test_no_stream_no_health() -> None:
    assert health() == ()


@pytest.mark.anyio
async def test_a_running_stream_reports_its_endpoint_cursor_and_watchers() -> None:
    got: list[Any] = []
    async with FakeNode(start_block=5, url=f"http://user:pw@fakenode-health.invalid/v3/{KEY}") as node:
        jobs = [asyncio.create_task(_drain(watch_attempted(TASK, poll_interval=0.01), got)) for _ in range(2)]
        await node.wait_for_watchers(2)
        node.emit("Attempted", task=TASK, provider=PROVIDER, suggested_payment=1)
        await _until(lambda: len(got) == 2, "both watchers got the event")
        await _until(lambda: health()[0].cursor == node.head, "the cursor reaches the head")

        (stream,) = health()
        (endpoint,) = stream.endpoints

        assert stream.chain_id == 1071 and stream.watchers == 2
        assert stream.head == node.head and stream.lag_blocks == 0
        assert endpoint.state == "active" and endpoint.answered and endpoint.last_error is None
        assert endpoint.head == node.head
        assert endpoint.latency_s is not None and endpoint.latency_s >= 0
        assert endpoint.url == "http://***@fakenode-health.invalid/v3/***"
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
    assert health() == ()


@pytest.mark.anyio
async def test_an_endpoint_that_fails_now_is_cooling_with_its_error_then_active_again() -> None:
    async with FakeNode() as node:
        job = asyncio.create_task(_drain(watch_attempted(TASK, poll_interval=0.01), []))
        await node.wait_for_watchers()
        node.fail_next(status=503, times=2)
        node.mine()

        await _until(lambda: health()[0].endpoints[0].state == "cooling", "the endpoint cools")
        (endpoint,) = health()[0].endpoints
        assert endpoint.answered
        assert endpoint.last_error is not None and "503" in endpoint.last_error

        await _until(lambda: health()[0].endpoints[0].state == "active", "the endpoint recovers")
        assert health()[0].endpoints[0].last_error is None
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)


@pytest.mark.anyio
async def test_health_may_be_asked_from_another_thread() -> None:
    async with FakeNode() as node:
        job = asyncio.create_task(_drain(watch_attempted(TASK, poll_interval=0.01), []))
        await node.wait_for_watchers()

        answers = await asyncio.to_thread(health)

        assert [s.watchers for s in answers] == [1]
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)


def test_health_values_are_frozen() -> None:
    endpoint = EndpointHealth("http://node", "active", 1, 0.01, None, True)
    stream = StreamHealth(1071, (endpoint,), 1, 1, 0, 1)

    with pytest.raises(dataclasses.FrozenInstanceError):
        stream.watchers = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        endpoint.state = "excluded"  # type: ignore[misc]
