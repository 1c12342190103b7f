"""Checkpoints on a real node: resumed across a restarted anvil, and the README's example as written."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ogpu import ChainConfig
from ogpu.events import Checkpoint, watch_attempted
from ogpu.events._devnode.nodes import Anvil, DevNodeNotFoundError
from ogpu.events.testing import FakeNode
from ogpu.types import CheckpointMismatchError
from tests.support.devnodes import random_address
from tests.support.fakenode import NEXUS

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
POLL = 0.05


async def take_with(cp: Checkpoint, task: str, count: int, **kwargs: Any) -> list[int]:
    stream = watch_attempted(task, checkpoint=cp, poll_interval=POLL, **kwargs)
    seen: list[int] = []

    async def run() -> None:
        async for event in stream:
            async with cp.transaction() as conn:
                conn.execute("INSERT INTO effects VALUES (?)", (event.suggested_payment,))
            seen.append(event.suggested_payment)
            if len(seen) == count:
                return

    try:
        await asyncio.wait_for(run(), 20)
    finally:
        await stream.aclose()
    return seen


@pytest.fixture
def pinned_anvil() -> Iterator[Anvil]:
    """An anvil whose block 0 is the same after a restart (its genesis timestamp fixed)."""
    node = Anvil(extra_args=("--timestamp", "1700000000"))
    try:
        node.find()
    except DevNodeNotFoundError as exc:
        pytest.skip(str(exc))
    node.start()
    node.install_emitter(NEXUS)
    yield node
    node.stop()


async def test_resume_across_a_restarted_development_node(
    pinned_anvil: Anvil, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    anvil = pinned_anvil
    ChainConfig.set_rpc(anvil.url)
    url = f"sqlite:///{tmp_path}/app.db"
    with sqlite3.connect(tmp_path / "app.db") as conn:
        conn.execute("CREATE TABLE effects (payment INTEGER)")
    task = random_address()
    for payment in (1, 2, 3):
        anvil.emit(NEXUS, "Attempted", task, random_address(), payment)
    assert await take_with(Checkpoint(url, "svc"), task, 3, from_block=0) == [1, 2, 3]

    # The node restarted on its port: a new chain from the same block 0, without those events.
    anvil.restart()
    anvil.install_emitter(NEXUS)
    # The committed event sat in block 3; an unknown old block resumes from the start of its height.
    anvil.mine(2)
    for payment in (10, 11):
        anvil.emit(NEXUS, "Attempted", task, random_address(), payment)
    with caplog.at_level(logging.WARNING, logger="ogpu.events"):
        assert await take_with(Checkpoint(url, "svc"), task, 2) == [10, 11]
    assert any("no longer on the chain" in record.getMessage() for record in caplog.records)
    with sqlite3.connect(tmp_path / "app.db") as conn:
        assert [row[0] for row in conn.execute("SELECT payment FROM effects")] == [1, 2, 3, 10, 11]


async def test_a_node_restarted_with_another_block_0_is_another_chain(anvil: Anvil, tmp_path: Path) -> None:
    ChainConfig.set_rpc(anvil.url)
    url = f"sqlite:///{tmp_path}/app.db"
    with sqlite3.connect(tmp_path / "app.db") as conn:
        conn.execute("CREATE TABLE effects (payment INTEGER)")
    task = random_address()
    anvil.emit(NEXUS, "Attempted", task, random_address(), 1)
    assert await take_with(Checkpoint(url, "svc"), task, 1, from_block=0) == [1]
    block0 = anvil.rpc("eth_getBlockByNumber", "0x0", False)["hash"]
    while anvil.rpc("eth_getBlockByNumber", "0x0", False)["hash"] == block0:
        await asyncio.sleep(0.3)  # anvil's block 0 carries the second it started in
        anvil.restart()
    with pytest.raises(CheckpointMismatchError, match="block 0 hash"):
        await take_with(Checkpoint(url, "svc"), task, 1)


def readme_checkpoint_example() -> str:
    """The first Python block of the README's checkpoint section, as written."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Checkpoints: effects exactly once") :]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "no Python example under the checkpoint section"
    return found.group(1)


async def test_the_readmes_checkpoint_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the example's sqlite:///billing.db is relative
    with sqlite3.connect("billing.db") as conn:
        conn.execute("CREATE TABLE offers (provider TEXT, payment INTEGER)")
    task, provider = random_address(), random_address()
    namespace: dict[str, Any] = {}
    async with FakeNode() as node:
        for payment in (5, 6):
            node.emit("Attempted", task=task, provider=provider, suggested_payment=payment)
        exec(compile(readme_checkpoint_example(), "README.md", "exec"), namespace)
        service = asyncio.ensure_future(namespace["bill"](task))
        await node.wait_for_watchers()
        node.emit("Attempted", task=task, provider=provider, suggested_payment=7)

        def billed() -> list[int]:
            with sqlite3.connect("billing.db") as conn:
                return [row[0] for row in conn.execute("SELECT payment FROM offers")]

        for _ in range(200):
            if len(billed()) == 3:
                break
            await asyncio.sleep(0.05)
        service.cancel()
        with pytest.raises(asyncio.CancelledError):
            await service
    assert billed() == [5, 6, 7]
    assert namespace["cp"].position is not None
