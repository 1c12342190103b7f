"""A value the enums here do not know (a newer contract's) never drops an event (issue 21.5).

Through the watchers (the in-memory node) and through ``ogpu-events`` (anvil):
the event comes with its value kept, as an ``UNKNOWN_<n>`` member equal to
the raw uint8 (flags: the unknown bits kept), and one WARNING per value.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from ogpu.events import watch_registered, watch_task_status_changed
from ogpu.events._codec import abi as _abi
from ogpu.events._devnode.nodes import Anvil
from ogpu.events.testing import FakeNode
from ogpu.types import Environment, TaskStatus
from tests.support.cli import run_cli
from tests.support.devnodes import random_address
from tests.support.fakenode import NEXUS

TASK = "0x" + "ab" * 20
SOURCE = "0x" + "cd" * 20
PROVIDER = "0x" + "ef" * 20


@pytest.fixture(autouse=True)
def nothing_warned_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_abi, "_WARNED", set())


async def _first(events: Any, count: int) -> list[Any]:
    got: list[Any] = []
    async for event in events:
        got.append(event)
        if len(got) == count:
            break
    await events.aclose()
    return got


@pytest.mark.anyio
async def test_watchers_yield_events_with_unknown_values_and_warn_once_per_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "ogpu.events")
    async with FakeNode() as node:
        node.emit("Registered", provider=PROVIDER, registrant_id=1, source=SOURCE, preferred_environment=200)
        node.emit("TaskStatusChanged", task=TASK, status=7)
        node.emit("TaskStatusChanged", task=TASK, status=7)
        node.emit("TaskStatusChanged", task=TASK, status=TaskStatus.FINALIZED)

        registered = await asyncio.wait_for(_first(watch_registered(SOURCE, from_block=0), 1), 5)
        statuses = await asyncio.wait_for(_first(watch_task_status_changed(TASK, from_block=0), 3), 5)

    environment = registered[0].preferred_environment
    assert isinstance(environment, Environment) and environment == 200
    assert [s.status for s in statuses] == [7, 7, TaskStatus.FINALIZED]
    assert isinstance(statuses[0].status, TaskStatus) and statuses[0].status.name == "UNKNOWN_7"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # One per unknown value, whether the kit's emit or a watcher decoded it first.
    assert len([w for w in warnings if "TaskStatus value" in w]) == 1, warnings
    assert len([w for w in warnings if "Environment value" in w]) == 1, warnings


@pytest.mark.nodes
def test_the_command_prints_an_unknown_value_and_count_is_reached(shared_anvil: Anvil) -> None:
    source = random_address()
    start = shared_anvil.block_number() + 1
    shared_anvil.emit(NEXUS, "Registered", random_address(), 1, source, 200)
    shared_anvil.emit(NEXUS, "Registered", random_address(), 2, source, 5 | 8)
    url = shared_anvil.url

    as_json = run_cli(
        "watch", "registered", source, "--rpc", url, "--from-block", str(start), "--count", "2", "--json"
    )
    human = run_cli("watch", "registered", source, "--rpc", url, "--from-block", str(start), "--count", "2")

    assert as_json.code == 0, as_json.stderr
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["preferred_environment"] for r in records] == [["UNKNOWN_200"], ["CPU", "AMD", "UNKNOWN_8"]]
    assert human.code == 0, human.stderr
    assert "preferred_environment=UNKNOWN_200" in human.stdout
    assert "preferred_environment=CPU|AMD|UNKNOWN_8" in human.stdout
    assert as_json.stderr.count("WARNING") == 2, as_json.stderr  # one per unknown value
