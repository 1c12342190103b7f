"""``ogpu-events demo``: one task lifecycle on a local anvil, seen by the six watchers.

The demo starts anvil, puts the log emitter at the Nexus address of the
current chain, points ``ChainConfig`` at the node and starts the six public
watchers, each scoped to the demo's source, task or response. Then it plays
a task's life step by step, and each watcher prints the typed events it
yields as they arrive. At the end it checks that every watcher got exactly
the events meant for it, in order, and that stopping the watchers removed
the node filter.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, TextIO

from ogpu.chain import ChainConfig
from ogpu.events import (
    watch_attempted,
    watch_registered,
    watch_response_status_changed,
    watch_response_submitted,
    watch_task_published,
    watch_task_status_changed,
)
from ogpu.events._cli.output import human_line
from ogpu.events._codec.address import checksum_address
from ogpu.events._devnode.nodes import ANVIL_VERSION, Anvil
from ogpu.events._stream.control import running_streams
from ogpu.types import Environment, ResponseStatus, TaskStatus

__all__ = ["run_demo"]

_LABEL_WIDTH = len("watch_response_status_changed")
_OGPU = 10**18  # wei per OGPU


def _address() -> str:
    return checksum_address(secrets.token_hex(20))


@dataclass
class _Cast:
    """The addresses the story is about."""

    source: str = field(default_factory=_address)
    task: str = field(default_factory=_address)
    response: str = field(default_factory=_address)
    provider_a: str = field(default_factory=_address)
    provider_b: str = field(default_factory=_address)
    other_task: str = field(default_factory=_address)


@dataclass
class _Step:
    story: str
    event: str
    values: tuple[Any, ...]
    watcher: str | None  # the watcher that must see it; None: nobody should


def _script(cast: _Cast) -> list[_Step]:
    gpu = Environment.CPU | Environment.NVIDIA
    return [
        _Step("provider A registers to the source (CPU|NVIDIA)", "Registered",
              (cast.provider_a, 1, cast.source, int(gpu)), "watch_registered"),
        _Step("provider B registers to the source (NVIDIA)", "Registered",
              (cast.provider_b, 2, cast.source, int(Environment.NVIDIA)), "watch_registered"),
        _Step("a client publishes a task against the source", "TaskPublished",
              (cast.task, cast.source), "watch_task_published"),
        _Step("provider A attempts the task, asking 2.5 OGPU", "Attempted",
              (cast.task, cast.provider_a, 5 * _OGPU // 2), "watch_attempted"),
        _Step("the task is now ATTEMPTED", "TaskStatusChanged",
              (cast.task, int(TaskStatus.ATTEMPTED)), "watch_task_status_changed"),
        _Step("provider B attempts it too, asking 3 OGPU", "Attempted",
              (cast.task, cast.provider_b, 3 * _OGPU), "watch_attempted"),
        _Step("someone attempts another task (no watcher should see this)", "Attempted",
              (cast.other_task, cast.provider_b, _OGPU), None),
        _Step("provider A submits a response", "ResponseSubmitted",
              (cast.response, cast.task), "watch_response_submitted"),
        _Step("the task is now RESPONDED", "TaskStatusChanged",
              (cast.task, int(TaskStatus.RESPONDED)), "watch_task_status_changed"),
        _Step("the client confirms the response", "ResponseStatusChanged",
              (cast.response, int(ResponseStatus.CONFIRMED)), "watch_response_status_changed"),
        _Step("the task is FINALIZED", "TaskStatusChanged",
              (cast.task, int(TaskStatus.FINALIZED)), "watch_task_status_changed"),
    ]  # fmt: skip


def _watchers(cast: _Cast, start: int, poll_interval: float) -> dict[str, AsyncGenerator[Any, None]]:
    # from_block is the first block of the story, so a watcher that joins the
    # stream a moment late still sees everything, from history.
    options: dict[str, Any] = {"from_block": start, "poll_interval": poll_interval}
    return {
        "watch_registered": watch_registered(cast.source, **options),
        "watch_task_published": watch_task_published(cast.source, **options),
        "watch_attempted": watch_attempted(cast.task, **options),
        "watch_response_submitted": watch_response_submitted(cast.task, **options),
        "watch_response_status_changed": watch_response_status_changed(cast.response, **options),
        "watch_task_status_changed": watch_task_status_changed(cast.task, **options),
    }


async def run_demo(
    out: TextIO,
    *,
    pause: float = 0.3,
    poll_interval: float = 0.2,
    deadline: float = 20.0,
) -> int:
    """Play the demo, printing to ``out``; 0 when every expected event arrived, else 1."""
    began = time.monotonic()

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    chain = ChainConfig.get_current_chain()
    nexus = ChainConfig.get_contract_address("NEXUS")
    node = Anvil(chain_id=int(chain))
    got: dict[str, list[Any]] = {}
    expected: dict[str, list[str]] = {}
    await asyncio.to_thread(node.start)
    try:
        node.install_emitter(nexus)
        ChainConfig.set_rpc(node.url)
        cast = _Cast()
        steps = _script(cast)
        say(f"anvil {ANVIL_VERSION} on {node.url} (chain {int(chain)}), log emitter at the Nexus {nexus}")
        say(f"source {cast.source}  task {cast.task}  response {cast.response}")
        say(f"provider A {cast.provider_a}  provider B {cast.provider_b}")

        async def consume(name: str, events: AsyncGenerator[Any, None]) -> None:
            async with contextlib.aclosing(events):
                async for event in events:
                    got.setdefault(name, []).append(event)
                    say(f"  {name:<{_LABEL_WIDTH}} {human_line(event, with_time=False)}")

        watchers = _watchers(cast, node.block_number() + 1, poll_interval)
        tasks = {name: asyncio.create_task(consume(name, gen), name=name) for name, gen in watchers.items()}
        say(f"{len(tasks)} watchers started (poll interval {poll_interval:g}s)\n")
        filters: set[str] = set()
        expected.update({name: [] for name in watchers})
        try:
            for step in steps:
                await asyncio.sleep(pause)
                filters.update(s.filter_id for s in running_streams() if s.filter_id)
                say(f"> {step.story}")
                tx = await asyncio.to_thread(node.emit, nexus, step.event, *step.values)
                if step.watcher is not None:
                    expected[step.watcher].append(tx)
            complete = await _wait_for(got, expected, tasks, deadline)
        finally:
            for task in tasks.values():
                task.cancel()
            results = await asyncio.gather(*tasks.values(), return_exceptions=True)
        failures = [
            f"{name} failed: {result}"
            for name, result in zip(tasks, results, strict=True)
            if isinstance(result, Exception)
        ]
        problems = _problems(got, expected, failures, complete, filters, node)
    finally:
        await asyncio.to_thread(node.stop)
    total = sum(len(events) for events in got.values())
    elapsed = time.monotonic() - began
    say("")
    if problems:
        for problem in problems:
            say(f"FAILED: {problem}")
        say(f"{len(expected)} watchers, {total} events, {len(problems)} problem(s) ({elapsed:.1f}s)")
        return 1
    say(
        f"{len(expected)} watchers, {total} events, all delivered in order, nothing out of scope;"
        f" filter uninstalled, anvil stopped ({elapsed:.1f}s)"
    )
    return 0


async def _wait_for(
    got: dict[str, list[Any]],
    expected: dict[str, list[str]],
    tasks: dict[str, asyncio.Task[None]],
    deadline: float,
) -> bool:
    """Until every watcher has its events (True), one fails, or the deadline passes."""
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        if all(len(got.get(name, [])) >= len(txs) for name, txs in expected.items()):
            return True
        if any(task.done() for task in tasks.values()):
            return False
        await asyncio.sleep(0.05)
    return False


def _problems(
    got: dict[str, list[Any]],
    expected: dict[str, list[str]],
    failures: list[str],
    complete: bool,
    filters: set[str],
    node: Anvil,
) -> list[str]:
    problems = list(failures)
    for name, txs in expected.items():
        seen = [event.transaction_hash for event in got.get(name, [])]
        if seen != txs:
            problems.append(f"{name} yielded {len(seen)} events, expected {len(txs)} (in emission order)")
    if not complete and not problems:
        problems.append("the watchers did not finish in time")
    # The node must have forgotten every filter the stream used: the last
    # watcher out uninstalls it.
    for filter_id in sorted(filters):
        try:
            node.rpc("eth_getFilterChanges", filter_id)
        except RuntimeError:
            continue
        problems.append(f"filter {filter_id} is still installed after the watchers stopped")
    return problems
