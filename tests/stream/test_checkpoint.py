"""``Checkpoint``: positions in SQLite and a real Postgres, committed with the service's writes.

Each behaviour runs on both databases (the Postgres server is started by the
tests, see ``tests/support/postgres.py``) against the in-memory node.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from ogpu.chain import ChainId
from ogpu.events import (
    AttemptedEvent,
    Checkpoint,
    EventPosition,
    watch_attempted,
    watch_nexus,
)
from ogpu.events.testing import FakeNode
from ogpu.types import (
    CheckpointError,
    CheckpointLostError,
    CheckpointMismatchError,
    CheckpointUrlError,
    CheckpointVersionError,
    InvalidArgumentError,
)
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.anyio
TASK = "0x" + "ab" * 20
OTHER_TASK = "0x" + "ef" * 20
PROVIDER = "0x" + "cd" * 20
POLL = 0.02


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.nodes)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/app.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


def emit(node: FakeNode, *payments: int) -> list[AttemptedEvent]:
    return [node.emit("Attempted", task=TASK, provider=PROVIDER, suggested_payment=p) for p in payments]


async def effects(url: str) -> list[int]:
    """The effects table: one payment per row, in the order the rows were written."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [row[0] for row in conn.execute("SELECT payment FROM effects ORDER BY id")]
    import psycopg

    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT payment FROM effects ORDER BY id")
        return [row[0] for row in await cur.fetchall()]


async def create_effects(url: str) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("CREATE TABLE effects (id INTEGER PRIMARY KEY AUTOINCREMENT, payment INTEGER)")
        return
    import psycopg

    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute("CREATE TABLE effects (id SERIAL PRIMARY KEY, payment BIGINT)")
        await conn.commit()


async def write_effect(conn: Any, payment: int) -> None:
    if isinstance(conn, sqlite3.Connection):
        conn.execute("INSERT INTO effects (payment) VALUES (?)", (payment,))
    else:
        await conn.execute("INSERT INTO effects (payment) VALUES (%s)", (payment,))


async def handle(
    url: str, count: int, *, name: str = "billing", fail_at: int | None = None, **kwargs: Any
) -> tuple[list[int], Checkpoint]:
    """Run a watcher over the checkpoint, writing each event's effect in ``transaction()``."""
    cp = Checkpoint(url, name)
    seen: list[int] = []
    stream = watch_attempted(TASK, checkpoint=cp, poll_interval=POLL, **kwargs)

    async def run() -> None:
        async for event in stream:
            async with cp.transaction() as conn:
                await write_effect(conn, event.suggested_payment)
                if event.suggested_payment == fail_at:
                    raise RuntimeError("the service failed while handling this event")
            seen.append(event.suggested_payment)
            if len(seen) == count:
                break

    try:
        await asyncio.wait_for(run(), 10)
    finally:
        await stream.aclose()
    return seen, cp


async def test_effects_and_positions_commit_together_and_resume_after_the_last(db_url: str) -> None:
    await create_effects(db_url)
    async with FakeNode() as node:
        events = emit(node, 1, 2, 3, 4, 5)
        seen, cp = await handle(db_url, 3, from_block=0)
        assert seen == [1, 2, 3]
        assert cp.position == events[2].position
        assert cp.position is not None and cp.position.block_hash == events[2].block_hash

        # A new process: from_block no longer applies, the checkpoint says where to go on.
        seen, cp = await handle(db_url, 2, from_block=0)
        assert seen == [4, 5]
        assert await effects(db_url) == [1, 2, 3, 4, 5]


async def test_a_failed_transaction_rolls_back_the_writes_and_the_event_comes_again(db_url: str) -> None:
    await create_effects(db_url)
    async with FakeNode() as node:
        emit(node, 1, 2, 3)
        with pytest.raises(RuntimeError, match="failed while handling"):
            await handle(db_url, 3, from_block=0, fail_at=2)
        assert await effects(db_url) == [1]
        seen, _ = await handle(db_url, 2)
        assert seen == [2, 3]
        assert await effects(db_url) == [1, 2, 3]


async def test_without_transaction_a_position_commits_when_the_next_event_is_asked_for(db_url: str) -> None:
    async with FakeNode() as node:
        events = emit(node, 1, 2, 3, 4)
        cp = Checkpoint(db_url, "plain")
        assert cp.position is None
        stream = watch_attempted(TASK, checkpoint=cp, from_block=0, poll_interval=POLL)
        assert (await stream.__anext__()).suggested_payment == 1
        assert cp.position is None  # handled, perhaps: committed only when the loop goes on
        assert (await stream.__anext__()).suggested_payment == 2
        assert cp.position == events[0].position
        await stream.aclose()  # a crash here: event 2 was not committed, and comes again

        cp = Checkpoint(db_url, "plain")
        stream = watch_attempted(TASK, checkpoint=cp, poll_interval=POLL)
        assert [(await stream.__anext__()).suggested_payment for _ in range(3)] == [2, 3, 4]
        await stream.aclose()


async def test_a_checkpoint_refuses_another_stream_naming_the_difference(db_url: str) -> None:
    await create_effects(db_url)
    async with FakeNode() as node:
        emit(node, 1)
        await handle(db_url, 1, from_block=0, name="one")
        cp = Checkpoint(db_url, "one")
        with pytest.raises(CheckpointMismatchError, match="scope"):
            await watch_attempted(OTHER_TASK, checkpoint=cp, poll_interval=POLL).__anext__()
    async with FakeNode(chain=ChainId.OGPU_TESTNET):
        cp = Checkpoint(db_url, "one")
        with pytest.raises(CheckpointMismatchError, match="chain id"):
            await watch_attempted(TASK, checkpoint=cp, poll_interval=POLL).__anext__()


async def test_a_row_written_by_a_newer_version_is_a_clear_error(db_url: str) -> None:
    await create_effects(db_url)
    async with FakeNode() as node:
        emit(node, 1)
        await handle(db_url, 1, from_block=0)
        await _execute(db_url, "UPDATE ogpu_checkpoints SET format = 2")
        with pytest.raises(CheckpointVersionError, match="newer ogpu"):
            await handle(db_url, 1)


async def test_a_process_that_lost_the_checkpoint_cannot_commit(db_url: str) -> None:
    """Without a lease, the latest process to open a checkpoint owns it: an older one is fenced off."""
    await create_effects(db_url)
    async with FakeNode() as node:
        emit(node, 1, 2, 3)
        old = Checkpoint(db_url, "billing")
        stream = watch_attempted(TASK, checkpoint=old, from_block=0, poll_interval=POLL)
        first = await stream.__anext__()
        async with old.transaction() as conn:
            await write_effect(conn, first.suggested_payment)
        await stream.__anext__()

        seen, _ = await handle(db_url, 2)  # a second process takes the checkpoint over
        assert seen == [2, 3]
        with pytest.raises(CheckpointLostError):
            async with old.transaction() as conn:
                await write_effect(conn, 2)
        with pytest.raises(CheckpointLostError):
            await stream.__anext__()
        assert await effects(db_url) == [1, 2, 3]


async def test_resume_after_a_reorg_of_the_committed_block_warns_and_follows_the_new_branch(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await create_effects(db_url)
    async with FakeNode() as node:
        emit(node, 1, 2)
        await handle(db_url, 2, from_block=0)
        node.reorg(1, events=[("Attempted", {"task": TASK, "provider": PROVIDER, "suggested_payment": 22})])
        emit(node, 3)
        with caplog.at_level(logging.WARNING, logger="ogpu.events"):
            seen, _ = await handle(db_url, 2)
        assert seen == [22, 3]
        assert any("no longer on the chain" in r.getMessage() for r in caplog.records)


async def test_after_and_checkpoint_together_and_bad_urls_fail_when_called(tmp_path: Path) -> None:
    cp = Checkpoint(f"sqlite:///{tmp_path}/a.db", "x")
    with pytest.raises(InvalidArgumentError, match="after= and checkpoint="):
        watch_attempted(TASK, checkpoint=cp, after=EventPosition(1, 0))
    for url in ("mysql://db/x", "sqlite://host/a.db", "sqlite:///", "billing.db"):
        with pytest.raises(CheckpointUrlError):
            Checkpoint(url, "x")
    assert isinstance(CheckpointUrlError("x"), InvalidArgumentError)
    with pytest.raises(InvalidArgumentError, match="lease"):
        Checkpoint(f"sqlite:///{tmp_path}/a.db", "x", lease=0)


async def test_an_unusable_database_is_a_typed_error_with_the_url_masked(
    tmp_path: Path, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeNode():
        cp = Checkpoint(f"sqlite:///{tmp_path}/missing/a.db", "x")
        with pytest.raises(CheckpointError, match="does not exist"):
            await watch_attempted(TASK, checkpoint=cp).__anext__()

        wrong = f"postgresql://postgres:s3cret@127.0.0.1:{postgres.port}/no_such_db"
        with pytest.raises(CheckpointError) as caught:
            await watch_attempted(TASK, checkpoint=Checkpoint(wrong, "x")).__anext__()
        assert "s3cret" not in str(caught.value) and "***@127.0.0.1" in str(caught.value)
        assert "no_such_db" in str(caught.value)

        monkeypatch.setitem(sys.modules, "psycopg", None)  # the ogpu[postgres] extra not installed
        with pytest.raises(CheckpointError, match=r"pip install 'ogpu\[postgres\]'"):
            await watch_attempted(TASK, checkpoint=Checkpoint(postgres.url, "x")).__anext__()


async def test_a_database_failing_mid_stream_is_retried_and_loses_nothing(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await create_effects(postgres_url)
    async with FakeNode() as node:
        emit(node, 1, 2, 3, 4)
        cp = Checkpoint(postgres_url, "billing")
        seen: list[int] = []
        with caplog.at_level(logging.WARNING, logger="ogpu.events"):
            async for event in watch_attempted(TASK, checkpoint=cp, from_block=0, poll_interval=POLL):
                if event.suggested_payment == 3:
                    # The server drops every session of the checkpoint's database.
                    await _execute(
                        postgres_url,
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    )
                async with cp.transaction() as conn:
                    await write_effect(conn, event.suggested_payment)
                seen.append(event.suggested_payment)
                if len(seen) == 4:
                    break
        assert seen == [1, 2, 3, 4]
        assert await effects(postgres_url) == [1, 2, 3, 4]
        assert any("retrying" in r.getMessage() for r in caplog.records)


async def test_replicas_in_one_process_take_turns(db_url: str) -> None:
    async with FakeNode() as node:
        emit(node, 1, 2, 3)
        first = Checkpoint(db_url, "shared", lease=1.0)
        second = Checkpoint(db_url, "shared", lease=1.0)
        a = watch_attempted(TASK, checkpoint=first, from_block=0, poll_interval=POLL)
        assert (await a.__anext__()).suggested_payment == 1
        b = watch_attempted(TASK, checkpoint=second, from_block=0, poll_interval=POLL)
        waiting = asyncio.ensure_future(b.__anext__())
        await asyncio.sleep(0.5)
        assert not waiting.done()  # the lease is held and renewed: the second one waits
        assert (await a.__anext__()).suggested_payment == 2
        await a.aclose()  # leaving hands the lease over at once; event 2 was not committed
        assert (await asyncio.wait_for(waiting, 5)).suggested_payment == 2
        await b.aclose()


async def _execute(url: str, statement: str) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(statement)
        return
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(statement)


async def test_a_replica_that_lost_its_lease_stops_even_while_the_chain_is_quiet(db_url: str) -> None:
    async with FakeNode() as node:
        [first] = emit(node, 1)
        holder = Checkpoint(db_url, "shared", lease=0.6)
        a = watch_attempted(TASK, checkpoint=holder, from_block=0, poll_interval=POLL)
        assert (await a.__anext__()).suggested_payment == 1
        waiting = asyncio.ensure_future(a.__anext__())  # event 1 is committed; the chain stays quiet
        for _ in range(100):
            if holder.position == first.position:
                break
            await asyncio.sleep(0.02)
        # As if the holder had been paused past its lease and a replica elsewhere had taken over
        # (and left): the epoch moved on.
        await _execute(
            db_url, "UPDATE ogpu_checkpoints SET epoch = epoch + 1, holder = NULL, lease_until = 0"
        )
        other = Checkpoint(db_url, "shared", lease=0.6)
        b = watch_attempted(TASK, checkpoint=other, from_block=0, poll_interval=POLL)
        taken = asyncio.ensure_future(b.__anext__())
        with pytest.raises(CheckpointLostError, match="another replica took the lease"):
            await asyncio.wait_for(waiting, 5)
        await asyncio.sleep(0.2)  # the new holder has joined the stream
        emit(node, 2)
        assert (await asyncio.wait_for(taken, 5)).suggested_payment == 2
        await b.aclose()
        await a.aclose()


async def test_watch_nexus_takes_a_checkpoint_too(db_url: str) -> None:
    await create_effects(db_url)
    async with FakeNode() as node:
        emit(node, 1, 2, 3)
        seen: list[int] = []
        for count in (2, 1):
            cp = Checkpoint(db_url, "nexus")
            stream = watch_nexus("Attempted", checkpoint=cp, from_block=0, poll_interval=POLL)
            for _ in range(count):
                event = await asyncio.wait_for(stream.__anext__(), 5)
                assert isinstance(event, AttemptedEvent)
                async with cp.transaction() as conn:
                    await write_effect(conn, event.suggested_payment)
                seen.append(event.suggested_payment)
            await stream.aclose()
        assert seen == [1, 2, 3]
        assert await effects(db_url) == [1, 2, 3]


async def test_a_table_of_another_layout_is_a_clear_error(db_url: str) -> None:
    await _execute(db_url, "CREATE TABLE ogpu_checkpoints (name TEXT PRIMARY KEY, layout INTEGER)")
    async with FakeNode() as node:
        emit(node, 1)
        cp = Checkpoint(db_url, "x")
        with pytest.raises(CheckpointVersionError, match="not one this version of ogpu can read"):
            await watch_attempted(TASK, checkpoint=cp, poll_interval=POLL).__anext__()


async def test_a_transaction_the_server_ended_rolls_back_and_stops_the_watcher(postgres_url: str) -> None:
    await create_effects(postgres_url)
    async with FakeNode() as node:
        emit(node, 1, 2)
        cp = Checkpoint(postgres_url, "slow", lease=0.3)  # idle in a transaction 1.3 s at most
        stream = watch_attempted(TASK, checkpoint=cp, from_block=0, poll_interval=POLL)
        event = await stream.__anext__()
        with pytest.raises(CheckpointError, match="rolled back"):
            async with cp.transaction() as conn:
                await write_effect(conn, event.suggested_payment)
                await asyncio.sleep(2)  # waiting on something else, past the server's patience
        with pytest.raises(CheckpointError, match="rolled back"):
            await stream.__anext__()  # nothing is yielded past the event that was not handled
        await stream.aclose()
        assert await effects(postgres_url) == []
        assert cp.position is None

        seen, _ = await handle(postgres_url, 2, name="slow", from_block=0)
        assert seen == [1, 2]
