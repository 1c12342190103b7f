"""The ogpu.events examples of the user guide, run as the guide writes them.

Each example's code is copied from ../shared/seed/events-guide.txt with only
the task address filled in; a background thread plays the chain's part.
``publish_task`` belongs to the synchronous client outside this library, so
a synchronous stand-in that emits a TaskPublished log takes its place.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ogpu.events import AttemptedEvent
from ogpu.events._devnode.nodes import Anvil
from tests.support.devnodes import random_address
from tests.support.fakenode import NEXUS


class _Attempts(threading.Thread):
    """Emits an attempt on ``task`` every 50 ms until stopped, like busy providers."""

    def __init__(self, node: Anvil, task: str) -> None:
        super().__init__(daemon=True)
        self.node, self.task, self.stop = node, task, threading.Event()

    def run(self) -> None:
        payment = 0
        while not self.stop.wait(0.05):
            payment += 1
            self.node.emit(NEXUS, "Attempted", self.task, random_address(), payment)


@pytest.fixture
def busy_task(node: Anvil) -> Iterator[str]:
    task = random_address()
    attempts = _Attempts(node, task)
    attempts.start()
    yield task
    attempts.stop.set()
    attempts.join()


class _Enough(Exception):
    pass


@pytest.mark.slow
def test_monitor_example(busy_task: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []

    def print(line: str) -> None:  # the guide's monitor() prints forever; stop it after one event
        lines.append(line)
        if len(lines) == 3:
            raise _Enough

    from ogpu.events import watch_attempted

    async def monitor(task_addr: str):
        async for event in watch_attempted(task_addr):
            print(f"Attempt from {event.provider}")
            print(f"Suggested payment: {event.suggested_payment} wei")
            print(f"Block: {event.block_number}")

    with pytest.raises(_Enough):
        asyncio.run(monitor(busy_task))
    assert lines[0].startswith("Attempt from 0x")
    assert lines[1].endswith(" wei") and lines[2].startswith("Block: ")


@pytest.mark.slow
def test_mixing_sync_and_async_example(node: Anvil, busy_task: str) -> None:
    @dataclass
    class Task:
        address: str

    def publish_task(_info: object) -> Task:  # stand-in for ogpu.client.publish_task (sync)
        node.emit(NEXUS, "TaskPublished", busy_task, random_address())
        return Task(busy_task)

    TaskInfo = dict  # mirrors the guide's name

    from ogpu.events import watch_attempted

    task = publish_task(TaskInfo())  # sync

    async def wait_for_first_attempt():
        async for event in watch_attempted(task.address):
            return event

    attempt = asyncio.run(wait_for_first_attempt())
    assert isinstance(attempt, AttemptedEvent)
    # A second asyncio.run in the same process works just as well.
    assert isinstance(asyncio.run(wait_for_first_attempt()), AttemptedEvent)


@pytest.mark.slow
def test_early_termination_example(busy_task: str) -> None:
    from ogpu.events import watch_attempted

    async def count_attempts(task_addr: str, limit: int = 3):
        attempts = []
        async for event in watch_attempted(task_addr):
            attempts.append(event)
            if len(attempts) >= limit:
                return attempts

    attempts: Any = asyncio.run(count_attempts(busy_task))
    assert len(attempts) == 3
    payments = [a.suggested_payment for a in attempts]
    assert payments == sorted(payments) and len(set(payments)) == 3


@pytest.mark.slow
def test_timeout_example(busy_task: str, node: Anvil) -> None:
    from ogpu.events import watch_attempted

    async def wait_for_attempt_with_timeout(task_addr: str, seconds: float):
        async def inner():
            async for event in watch_attempted(task_addr):
                return event

        return await asyncio.wait_for(inner(), timeout=seconds)

    async def main() -> tuple[Any, BaseException | None]:
        attempt = await wait_for_attempt_with_timeout(busy_task, 120.0)
        quiet = random_address()  # nobody attempts this one: the deadline fires
        try:
            await wait_for_attempt_with_timeout(quiet, 0.5)
        except asyncio.TimeoutError as exc:
            return attempt, exc
        return attempt, None

    attempt, timed_out = asyncio.run(main())
    assert isinstance(attempt, AttemptedEvent)
    assert isinstance(timed_out, asyncio.TimeoutError)


def test_from_block_and_poll_interval_examples(node: Anvil) -> None:
    from ogpu.events import watch_attempted

    task = random_address()
    first = node.block_number() + 1
    node.emit(NEXUS, "Attempted", task, random_address(), 5)

    async def main() -> list[Any]:
        got = []
        # Start from a specific block
        async for event in watch_attempted(task, from_block=first):
            got.append(event)
            break
        node.emit(NEXUS, "Attempted", task, random_address(), 6)
        # Poll more aggressively
        async for event in watch_attempted(task, from_block=first, poll_interval=0.5):
            got.append(event)
            if len(got) == 3:
                break
        return got

    assert [e.suggested_payment for e in asyncio.run(main())] == [5, 5, 6]
