"""A service writing one effect row per event inside ``transaction()``, for tests to kill and stop.

    python -m tests.support.checkpoint_child DB_URL NAME RPC_URL TASK \
        [--lease S] [--until N] [--poll-interval S]

Each ``Attempted`` event of TASK becomes a row ``(payment, pid, at)`` of the
``effects`` table, written in the checkpoint's transaction. It exits 0 once
it handled the event whose payment is ``--until``, 3 when it lost the
checkpoint to another replica (``CheckpointLostError``), and runs until
killed otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import time
from typing import Any

from ogpu import ChainConfig
from ogpu.events import Checkpoint, watch_attempted
from ogpu.types import CheckpointLostError

EXIT_LOST = 3
# The command that starts a child (run from the repository root).
CHILD = (sys.executable, "-m", "tests.support.checkpoint_child")


def create_effects(url: str) -> None:
    """The effects table, in the checkpoint's database."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS effects "
                "(id INTEGER PRIMARY KEY AUTOINCREMENT, payment INTEGER, pid INTEGER, at REAL)"
            )
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS effects "
            "(id SERIAL PRIMARY KEY, payment BIGINT, pid INTEGER, at DOUBLE PRECISION)"
        )


def read_effects(url: str) -> list[tuple[int, int, int, float]]:
    """(id, payment, pid, at) of every effect row, in the order they were committed."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30) as conn:
            return list(conn.execute("SELECT id, payment, pid, at FROM effects ORDER BY id"))
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(row) for row in conn.execute("SELECT id, payment, pid, at FROM effects ORDER BY id")]


def holder_pid(url: str, name: str) -> int | None:
    """The pid of the replica holding the lease (``host:pid:nonce``), if any holds it."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30) as lite:
            try:
                found = lite.execute(
                    "SELECT holder FROM ogpu_checkpoints WHERE name = ? AND lease_until > ?",
                    (name, time.time()),
                ).fetchone()
            except sqlite3.OperationalError:  # no table yet
                return None
        return None if found is None or found[0] is None else int(found[0].split(":")[1])
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('ogpu_checkpoints')").fetchone()
        if exists is None or exists[0] is None:  # no replica has started far enough yet
            return None
        row = conn.execute(
            "SELECT holder FROM ogpu_checkpoints WHERE name = %s "
            "AND lease_until > extract(epoch from clock_timestamp())",
            (name,),
        ).fetchone()
    return None if row is None or row[0] is None else int(row[0].split(":")[1])


async def _write(conn: Any, payment: int) -> None:
    if isinstance(conn, sqlite3.Connection):
        conn.execute(
            "INSERT INTO effects (payment, pid, at) VALUES (?, ?, ?)", (payment, os.getpid(), time.time())
        )
    else:
        await conn.execute(
            "INSERT INTO effects (payment, pid, at) VALUES (%s, %s, %s)", (payment, os.getpid(), time.time())
        )


async def serve(
    url: str, name: str, task: str, lease: float | None, until: int | None, poll_interval: float
) -> int:
    checkpoint = Checkpoint(url, name, lease=lease)
    async for event in watch_attempted(
        task, checkpoint=checkpoint, from_block=0, poll_interval=poll_interval
    ):
        async with checkpoint.transaction() as conn:
            await _write(conn, event.suggested_payment)
        if event.suggested_payment == until:
            return 0
    return 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("name")
    parser.add_argument("rpc")
    parser.add_argument("task")
    parser.add_argument("--lease", type=float)
    parser.add_argument("--until", type=int)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    args = parser.parse_args()
    ChainConfig.set_rpc(args.rpc)
    try:
        return asyncio.run(serve(args.db, args.name, args.task, args.lease, args.until, args.poll_interval))
    except CheckpointLostError as exc:
        print(f"lost: {exc}", file=sys.stderr, flush=True)
        return EXIT_LOST


if __name__ == "__main__":
    sys.exit(main())
