"""Checkpoints across real crashes: child processes follow anvil, and are SIGKILLed and SIGSTOPped.

Each child (``tests/support/checkpoint_child.py``) writes one effect row per event
inside ``transaction()``. Whatever happens to the children, the effects
table must end with every event exactly once, in chain order.

``make test`` runs a small variant (a few kills over some hundred events);
``make faults`` the full size (``OGPU_CHECKPOINT_FULL=1``: 500 events, 20
kills per database, more replica handovers).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ogpu.events._devnode.nodes import Anvil
from tests.support.checkpoint_child import CHILD, EXIT_LOST, create_effects, holder_pid, read_effects
from tests.support.devnodes import Emitter, random_address, wait_for
from tests.support.fakenode import NEXUS

ROOT = Path(__file__).resolve().parents[2]
FULL = os.environ.get("OGPU_CHECKPOINT_FULL", "") not in ("", "0")
EVENTS, KILLS = (500, 20) if FULL else (100, 4)
HANDOVERS = 6 if FULL else 2
LEASE = 2.0
PROVIDER = random_address()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/service.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


def emit(node: Anvil, task: str, payments: range) -> None:
    """Several events per block, as a busy chain has them."""
    items = list(payments)
    for start in range(0, len(items), 10):
        with node.one_block():
            hashes = [node.emit(NEXUS, "Attempted", task, PROVIDER, p) for p in items[start : start + 10]]
        node.receipt(hashes[-1])


class Child:
    """A child service; its stderr goes to a file (a pipe nobody reads could fill up and block it)."""

    def __init__(self, log: Path, db: str, name: str, node: Anvil, task: str, *extra: str) -> None:
        self.log = log
        with open(log, "wb") as err:
            self.process = subprocess.Popen(
                [*CHILD, db, name, node.url, task, *extra],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.pid = self.process.pid

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def assert_exactly_once_in_order(db: str, total: int) -> None:
    payments = [row[1] for row in read_effects(db)]
    assert payments == list(range(total)), (
        f"{len(payments)} rows for {total} events; repeated: "
        f"{sorted({p for p in payments if payments.count(p) > 1})[:10]}, "
        f"missing: {sorted(set(range(total)) - set(payments))[:10]}"
    )


@pytest.mark.slow
def test_effects_exactly_once_through_sigkills(shared_anvil: Anvil, db_url: str, tmp_path: Path) -> None:
    node, task = shared_anvil, random_address()
    create_effects(db_url)
    rng = random.Random(os.environ.get("OGPU_SEED", "checkpoint"))
    chunk = EVENTS // (KILLS + 1)
    emitted = 0
    kills = 0
    while kills < KILLS:
        emit(node, task, range(emitted, emitted + chunk))
        emitted += chunk
        child = Child(tmp_path / f"child{kills}.log", db_url, "kill", node, task).process
        # Random moments: while it starts, reads history, writes, or waits for live events.
        time.sleep(rng.uniform(0.3, 1.5) if FULL else rng.uniform(0.4, 1.0))
        child.kill()
        child.wait()
        kills += 1
    emit(node, task, range(emitted, EVENTS))
    last = Child(tmp_path / "last.log", db_url, "kill", node, task, "--until", str(EVENTS - 1))
    try:
        last.process.wait(timeout=120)
    finally:
        last.process.kill()
    assert last.process.returncode == 0, last.stderr()
    assert_exactly_once_in_order(db_url, EVENTS)


@pytest.fixture
def replicas() -> Iterator[list[Child]]:
    children: list[Child] = []
    yield children
    for child in children:
        if child.process.poll() is None:
            os.kill(child.pid, signal.SIGCONT)
            child.process.kill()
        child.process.wait()


@pytest.mark.slow
def test_replicas_hand_over_and_a_paused_holder_is_fenced(
    shared_anvil: Anvil, postgres_url: str, replicas: list[Child], tmp_path: Path
) -> None:
    node, task, db = shared_anvil, random_address(), postgres_url
    create_effects(db)

    def replica() -> Child:
        child = Child(
            tmp_path / f"replica{len(replicas)}.log", db, "shared", node, task, "--lease", str(LEASE)
        )
        replicas.append(child)
        return child

    def running_holder() -> Child:
        pid: list[int | None] = [None]

        def known() -> bool:
            pid[0] = holder_pid(db, "shared")
            return any(child.pid == pid[0] and child.process.poll() is None for child in replicas)

        wait_for(known, "a replica holding the lease")
        return next(child for child in replicas if child.pid == pid[0])

    def rows() -> int:
        return len(read_effects(db))

    def more_than(count: int) -> Callable[[], bool]:
        return lambda: rows() > count

    for _ in range(3):
        replica()
    emitter = Emitter(node, NEXUS, task, PROVIDER, 0.02)
    try:
        for _ in range(HANDOVERS):
            holder = running_holder()
            before = rows()
            wait_for(more_than(before), "the holder writing effects")
            holder.process.kill()
            holder.process.wait()
            replica()  # three again
            after_kill = rows()
            wait_for(more_than(after_kill), "another replica taking over", timeout=LEASE + 20)

        # A holder paused past its lease: another takes over; resumed, it must fail and write nothing.
        paused = running_holder()
        os.kill(paused.pid, signal.SIGSTOP)
        time.sleep(0.2)
        stopped_at = max((row[0] for row in read_effects(db)), default=0)
        wait_for(
            lambda: any(row[0] > stopped_at and row[2] != paused.pid for row in read_effects(db)),
            "a takeover from the paused holder",
            timeout=LEASE + 20,
        )
        os.kill(paused.pid, signal.SIGCONT)
        paused.process.wait(timeout=20)
        assert paused.process.returncode == EXIT_LOST, paused.stderr()
        assert "another replica took the lease" in paused.stderr()
        assert not [row for row in read_effects(db) if row[0] > stopped_at and row[2] == paused.pid]
    finally:
        total = emitter.stop()
    wait_for(lambda: rows() >= total, f"all {total} events handled", timeout=60)
    assert_exactly_once_in_order(db, total)
