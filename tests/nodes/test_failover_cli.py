"""``ogpu-events --rpc A --rpc B`` with A killed mid-run (issue 18), as a user runs it.

The command runs in a subprocess while this test's event loop serves both
endpoints (proxies in front of one anvil) and an emitter sends events to the
node; A dies after the first lines are printed and never comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from ogpu.events._devnode.nodes import Anvil
from tests.anvil_helpers import Emitter, random_address
from tests.cli_helpers import CLI, env
from tests.conftest import NEXUS
from tests.failover_helpers import EMIT_EVERY, endpoints, leaked_filters, secrets_shown, switches

pytestmark = pytest.mark.anyio

EVENTS = 40
BEFORE_THE_KILL = 10


async def test_cli_with_two_rpcs_and_the_first_killed_prints_every_event_once(shared_anvil: Anvil) -> None:
    task = random_address()
    async with endpoints(shared_anvil.url, "first", "second") as (first, second):
        start = shared_anvil.block_number() + 1
        emitter = Emitter(shared_anvil, NEXUS, task, random_address(), EMIT_EVERY)
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
        leaked = await leaked_filters(shared_anvil.url, [second.proxy])

    stderr = err.decode()
    assert process.returncode == 0, stderr
    records = [json.loads(line) for line in [*lines, *rest.splitlines()]]
    assert [r["suggested_payment"] for r in records] == list(range(EVENTS))
    said = stderr.splitlines()
    assert len(switches(said, first, second)) == 1, stderr
    assert "Traceback" not in stderr
    assert not secrets_shown(said, [first, second])
    assert second.polls > 0
    assert not leaked, "a filter was left installed"
