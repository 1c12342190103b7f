"""``ogpu-events --rpc A --rpc B`` with A killed mid-run (issue 18), as a user runs it.

The command runs once for the module, in a subprocess, while an event loop
of the test process serves both endpoints (proxies in front of one anvil)
and an emitter sends events to the node; A dies after the first lines are
printed and never comes back. The tests read what the user got.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Iterator

import pytest

from ogpu.events._devnode.nodes import Anvil
from tests.support.cli import CLI, env
from tests.support.devnodes import Emitter, random_address
from tests.support.failover import EMIT_EVERY, Endpoint, endpoints, leaked_filters, secrets_shown, switches
from tests.support.fakenode import NEXUS

EVENTS = 40
BEFORE_THE_KILL = 10


@dataclasses.dataclass
class _Outcome:
    code: int | None
    records: list[dict[str, object]]
    stderr: str
    first: Endpoint
    second: Endpoint
    leaked: list[str]


async def _run_cli(node: Anvil) -> _Outcome:
    task = random_address()
    async with endpoints(node.url, "first", "second") as (first, second):
        start = node.block_number() + 1
        emitter = Emitter(node, NEXUS, task, random_address(), EMIT_EVERY)
        process = await asyncio.create_subprocess_exec(
            *CLI,
            "watch",
            "attempted",
            task,
            *("--rpc", first.url, "--rpc", second.url),
            *("--from-block", str(start), "--count", str(EVENTS)),
            *("--poll-interval", "0.1", "--json"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env(),
        )
        try:
            assert process.stdout is not None
            lines: list[bytes] = []
            while len(lines) < BEFORE_THE_KILL:
                line = await asyncio.wait_for(process.stdout.readline(), 30.0)
                assert line, "the command ended early"
                lines.append(line)
            await first.proxy.kill()
            rest, err = await asyncio.wait_for(process.communicate(), 60.0)
        finally:
            emitter.stop()
            if process.returncode is None:
                process.kill()
                with contextlib.suppress(Exception):
                    await process.wait()
        # The first endpoint died holding a filter nobody can reach; the second's is gone.
        leaked = await leaked_filters(node.url, [second.proxy])
    records = [json.loads(line) for line in [*lines, *rest.splitlines()]]
    return _Outcome(process.returncode, records, err.decode(), first, second, leaked)


@pytest.fixture(scope="module")
def outcome(shared_anvil: Anvil) -> Iterator[_Outcome]:
    yield asyncio.run(_run_cli(shared_anvil))


def test_every_event_is_printed_once_in_order_though_the_first_rpc_died(outcome: _Outcome) -> None:
    assert outcome.code == 0, outcome.stderr
    assert [r["suggested_payment"] for r in outcome.records] == list(range(EVENTS))
    # The rest came through the second endpoint, which left no filter behind.
    assert outcome.second.polls > 0
    assert not outcome.leaked, "a filter was left installed"


def test_the_switch_is_said_in_one_line_naming_both_endpoints_masked(outcome: _Outcome) -> None:
    said = outcome.stderr.splitlines()
    assert len(switches(said, outcome.first, outcome.second)) == 1, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert not secrets_shown(said, [outcome.first, outcome.second])


def test_a_switch_costs_the_user_one_line(outcome: _Outcome) -> None:
    """The issue's promise: the CLI prints one line when it switches, not the stream's repairs too."""
    assert len(outcome.stderr.splitlines()) == 1, outcome.stderr
