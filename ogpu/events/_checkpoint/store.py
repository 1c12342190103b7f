"""Durable checkpoints: a watcher's position kept in a database, committed with the user's writes.

``after=`` and ``--state`` save the position apart from what the service
did with the event, so a crash between the two repeats or skips one. A
:class:`Checkpoint` keeps the position in a table of the service's own
database (SQLite here, Postgres in ``_checkpoint_pg``) and commits it in the
same transaction as the service's writes (``transaction()``): effect and
position are one commit, so nothing repeats and nothing is skipped.

Several processes may share one checkpoint (``lease=``): one holds the
lease and yields, the others wait and take over when it lapses. The lease
is an *epoch* in the checkpoint's row, raised by every takeover, and every
commit updates the row only where the epoch is still the holder's, in the
same transaction as the user's writes. A holder that lost its lease (paused
past it, partitioned) therefore cannot commit: its writes are rolled back
and it gets :class:`CheckpointLostError`. That is fencing, not a heartbeat
lock: what makes it safe is the commit, not the clock.

One row per checkpoint name, in ``ogpu_checkpoints``::

    name | format | stream (JSON) | position | epoch | holder | lease_until

``stream`` is what the position belongs to (chain id, block 0's hash,
Nexus, events, scope); ``format`` is the row layout's version, so a newer
layout is refused with a clear error instead of being guessed at.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import random
import socket
import sqlite3
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from ogpu._errors import (
    CheckpointError,
    CheckpointLostError,
    CheckpointMismatchError,
    CheckpointUrlError,
    CheckpointVersionError,
    InvalidArgumentError,
    RpcError,
)
from ogpu.chain import mask_url
from ogpu.events._codec.position import EventPosition

__all__ = ["FORMAT", "Backend", "Checkpoint", "StreamId", "checkpointed", "is_checkpoint_url"]

log = logging.getLogger("ogpu.events")
_T = TypeVar("_T")

# The row layout this version writes and reads; a row with a higher number
# was written by a newer ogpu and is refused rather than misread.
FORMAT = 1
TABLE = "ogpu_checkpoints"
# A failing database is retried with this backoff (seconds), capped.
_RETRY_FIRST = 0.1
_RETRY_CAP = 5.0


def is_checkpoint_url(text: str) -> bool:
    """Whether ``text`` names a database (``sqlite://``, ``postgresql://``), not a file path."""
    return text.split("://", 1)[0].lower() in ("sqlite", "postgresql", "postgres") and "://" in text


@dataclass(frozen=True, slots=True)
class StreamId:
    """What a checkpoint's position belongs to; a position means nothing for any other stream."""

    chain_id: int
    genesis: str  # block 0's hash: tells apart two chains with one chain id
    nexus: str
    events: tuple[str, ...]
    field: str | None
    scope: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis": self.genesis.lower(),
            "nexus": self.nexus.lower(),
            "events": sorted(self.events),
            "scope": None if self.field is None else {"field": self.field, "address": f"0x{self.scope}"},
        }


@dataclass(slots=True)
class Claim:
    """What a backend answers to a claim: the epoch won (None: another holds the lease) and the position."""

    epoch: int | None
    position: str | None
    stream: str | None
    lapses_in: float | None = None  # seconds until the holder's lease lapses, when another holds it


class Backend(abc.ABC):
    """One database's statements; the :class:`Checkpoint` holds the logic and the retries."""

    masked_url: str
    # The exceptions that mean the database failed (retried), not that the code is wrong.
    transient: tuple[type[BaseException], ...] = ()

    def set_lease(self, lease: float | None) -> None:  # noqa: B027 - optional hook, no-op by default
        """Told the lease before connecting (Postgres bounds idle transactions by it)."""

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def read(self, name: str) -> tuple[int, str | None, str | None, int] | None:
        """(format, stream, position, epoch) of the row, None when there is none."""

    @abc.abstractmethod
    async def claim(self, name: str, stream: str, holder: str, lease: float | None) -> Claim:
        """Create the row if needed and take it when free (always, without a lease)."""

    @abc.abstractmethod
    async def renew(self, name: str, epoch: int, lease: float) -> bool: ...

    @abc.abstractmethod
    async def release(self, name: str, epoch: int) -> None: ...

    @abc.abstractmethod
    async def save(self, name: str, epoch: int, position: str, lease: float | None) -> bool:
        """Commit ``position`` alone; False when the epoch is no longer this holder's."""

    @abc.abstractmethod
    async def begin(self) -> Any:
        """Open a transaction and return the connection the user writes on."""

    @abc.abstractmethod
    async def finish(self, name: str, epoch: int, position: str, lease: float | None) -> bool:
        """Write ``position`` into the open transaction and commit; False (rolled back) when fenced."""

    @abc.abstractmethod
    async def rollback(self) -> None: ...


class SqliteBackend(Backend):
    """The standard library's ``sqlite3``: the embedded default, one host.

    The connection is in autocommit mode and transactions are opened with
    ``BEGIN IMMEDIATE``: the write lock is taken at the start, so two
    processes never both read a row and then both write it. The statements
    of this class run on one thread of their own, in order: a commit's
    fsync, or ``BEGIN IMMEDIATE`` waiting for another process's write lock
    (up to the busy timeout), never stalls the event loop and the other
    watchers on it. The user's own statements in ``transaction()`` run
    where the user runs them.
    """

    transient = (sqlite3.OperationalError,)

    def __init__(self, url: str, path: str) -> None:
        self.url = url
        # A file path holds no credentials, and its folder names must stay readable in errors.
        self.masked_url = url
        self.path = path
        self.conn: sqlite3.Connection | None = None
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None

    async def _run(self, work: Callable[..., _T], *args: Any) -> _T:
        if self._thread is None:
            self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ogpu-checkpoint")
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, *args)

    async def connect(self) -> None:
        folder = Path(self.path).parent
        if self.path != ":memory:" and not folder.is_dir():
            raise CheckpointError(
                f"cannot open the checkpoint database {self.masked_url}: the folder {str(folder)!r} "
                "does not exist",
                url=self.masked_url,
            )
        try:
            self.conn = await self._run(self._connect)
        except sqlite3.Error as exc:
            raise CheckpointError(
                f"cannot open the checkpoint database {self.masked_url}: {exc}", url=self.masked_url
            ) from None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
        # WAL lets readers run beside the writer; FULL makes every commit durable on disk.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY, format INTEGER NOT NULL, "
            "stream TEXT, position TEXT, epoch INTEGER NOT NULL DEFAULT 0, holder TEXT, "
            "lease_until REAL)"
        )
        return conn

    def _c(self) -> sqlite3.Connection:
        if self.conn is None:
            raise CheckpointError("the checkpoint is not open", url=self.masked_url)
        return self.conn

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await self._run(self._close, conn)
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None

    @staticmethod
    def _close(conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        conn.close()

    async def read(self, name: str) -> tuple[int, str | None, str | None, int] | None:
        return await self._run(self._read, name)

    def _read(self, name: str) -> tuple[int, str | None, str | None, int] | None:
        row = (
            self._c()
            .execute(f"SELECT format, stream, position, epoch FROM {TABLE} WHERE name = ?", (name,))
            .fetchone()
        )
        return None if row is None else (int(row[0]), row[1], row[2], int(row[3]))

    async def claim(self, name: str, stream: str, holder: str, lease: float | None) -> Claim:
        return await self._run(self._claim, name, stream, holder, lease)

    def _claim(self, name: str, stream: str, holder: str, lease: float | None) -> Claim:
        conn = self._c()
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = time.time()
            conn.execute(
                f"INSERT OR IGNORE INTO {TABLE} (name, format, stream, position, epoch) "
                "VALUES (?, ?, ?, NULL, 0)",
                (name, FORMAT, stream),
            )
            row = conn.execute(
                f"SELECT stream, position, epoch, holder, lease_until FROM {TABLE} WHERE name = ?", (name,)
            ).fetchone()
            free = lease is None or row[3] is None or row[4] is None or row[4] < now
            if not free:
                conn.execute("COMMIT")
                return Claim(None, row[1], row[0], row[4] - now)
            epoch = int(row[2]) + 1
            conn.execute(
                f"UPDATE {TABLE} SET epoch = ?, holder = ?, lease_until = ?, "
                "stream = COALESCE(stream, ?) WHERE name = ?",
                (
                    epoch,
                    holder if lease is not None else None,
                    None if lease is None else now + lease,
                    stream,
                    name,
                ),
            )
            conn.execute("COMMIT")
            return Claim(epoch, row[1], row[0] or stream)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    async def renew(self, name: str, epoch: int, lease: float) -> bool:
        return await self._run(self._renew, name, epoch, lease)

    def _renew(self, name: str, epoch: int, lease: float) -> bool:
        cur = self._c().execute(
            f"UPDATE {TABLE} SET lease_until = ? WHERE name = ? AND epoch = ?",
            (time.time() + lease, name, epoch),
        )
        return cur.rowcount == 1

    async def release(self, name: str, epoch: int) -> None:
        await self._run(self._release, name, epoch)

    def _release(self, name: str, epoch: int) -> None:
        self._c().execute(
            f"UPDATE {TABLE} SET holder = NULL, lease_until = NULL WHERE name = ? AND epoch = ?",
            (name, epoch),
        )

    async def save(self, name: str, epoch: int, position: str, lease: float | None) -> bool:
        return await self._run(self._save, name, epoch, position, lease)

    def _save(self, name: str, epoch: int, position: str, lease: float | None) -> bool:
        self._begin()
        return self._finish(name, epoch, position, lease)

    async def begin(self) -> sqlite3.Connection:
        return await self._run(self._begin)

    def _begin(self) -> sqlite3.Connection:
        conn = self._c()
        conn.execute("BEGIN IMMEDIATE")
        return conn

    async def finish(self, name: str, epoch: int, position: str, lease: float | None) -> bool:
        return await self._run(self._finish, name, epoch, position, lease)

    def _finish(self, name: str, epoch: int, position: str, lease: float | None) -> bool:
        conn = self._c()
        try:
            if lease is None:
                cur = conn.execute(
                    f"UPDATE {TABLE} SET position = ? WHERE name = ? AND epoch = ?", (position, name, epoch)
                )
            else:
                cur = conn.execute(
                    f"UPDATE {TABLE} SET position = ?, lease_until = ? WHERE name = ? AND epoch = ?",
                    (position, time.time() + lease, name, epoch),
                )
            if cur.rowcount != 1:
                conn.execute("ROLLBACK")
                return False
            conn.execute("COMMIT")
            return True
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            raise

    async def rollback(self) -> None:
        await self._run(self._rollback)

    def _rollback(self) -> None:
        conn = self._c()
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _backend(url: str) -> Backend:
    if not isinstance(url, str):
        raise CheckpointUrlError(f"a checkpoint URL is text like 'sqlite:///app.db', got {url!r:.80}")
    masked = mask_url(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise CheckpointUrlError(f"cannot parse the checkpoint URL {masked}", url=masked) from None
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # sqlite:///relative.db, sqlite:////absolute/path.db (three slashes, then the path).
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise CheckpointUrlError(
                f"a SQLite checkpoint URL is sqlite:///relative/path.db or sqlite:////absolute/path.db, "
                f"got {masked}",
                url=masked,
            )
        return SqliteBackend(url, unquote(parts.path[1:]))
    if scheme in ("postgresql", "postgres"):
        from ogpu.events._checkpoint.postgres import PostgresBackend

        return PostgresBackend(url)
    raise CheckpointUrlError(
        f"a checkpoint URL starts with sqlite:/// or postgresql://, got {masked}", url=masked
    )


class Checkpoint:
    """A watcher's position, kept in a database and committed with the service's own writes.

    ``url``: ``sqlite:///path.db`` (the standard library's ``sqlite3``, no
    extra dependency) or ``postgresql://user@host/db`` (``pip install
    ogpu[postgres]``). ``name`` tells apart the checkpoints of one database.
    ``lease``: seconds; set it to run several processes on one checkpoint,
    of which one at a time yields (see the README).

    Nothing touches the database until the watcher it is given to
    (``checkpoint=``) starts; a URL of the wrong form raises
    ``CheckpointUrlError`` here.
    """

    def __init__(self, url: str, name: str, *, lease: float | None = None) -> None:
        if not isinstance(name, str) or not name or len(name) > 200:
            raise InvalidArgumentError(
                f"a checkpoint name is non-empty text (200 characters at most), got {name!r:.80}"
            )
        if lease is not None and (
            not isinstance(lease, int | float) or isinstance(lease, bool) or not 0 < lease < 86400
        ):
            raise InvalidArgumentError(f"lease must be None or seconds > 0 (below a day), got {lease!r:.80}")
        self._backend = _backend(url)
        self.name = name
        self.lease = None if lease is None else float(lease)
        self._backend.set_lease(self.lease)
        self.url = self._backend.masked_url
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self._committed: EventPosition | None = None
        self._current: EventPosition | None = None  # the event yielded last, committed or not
        self._epoch: int | None = None
        self._lost = False
        self._failed: CheckpointError | None = None
        self._in_use = False
        self._lock = asyncio.Lock()
        self._lost_event = asyncio.Event()
        self._valid_until = 0.0  # monotonic time until which the lease surely holds
        self._renewer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        lease = "" if self.lease is None else f", lease={self.lease:g}"
        return f"Checkpoint({self.url!r}, {self.name!r}{lease})"

    @property
    def position(self) -> EventPosition | None:
        """The last committed position (``None`` before the first commit)."""
        return self._committed

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """A transaction on the checkpoint's database that also commits the event just yielded.

        Yields the connection (``sqlite3.Connection`` or
        ``psycopg.AsyncConnection``) to write on; do not commit it yourself.
        Leaving the block commits those writes and the position of the
        event the watcher yielded last, together; an exception rolls both
        back. ``CheckpointLostError`` when another replica took the lease:
        the writes are rolled back and the watcher stops.
        """
        if self._epoch is None:
            raise CheckpointError(
                "transaction() belongs inside the loop of the watcher this checkpoint was given to",
                url=self.url,
            )
        target = self._current
        if target is None:
            raise CheckpointError(
                "transaction() commits the event the watcher yielded last; none yet", url=self.url
            )
        async with self._lock:
            self._raise_if_lost()
            conn = await self._retrying("opening a transaction", self._backend.begin)
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(*self._backend.transient, CheckpointError):
                    await self._backend.rollback()
                raise
            started = time.monotonic()
            try:
                ok = await self._backend.finish(self.name, self._epoch_now(), str(target), self.lease)
            except self._backend.transient as exc:
                # The writes cannot be replayed from here: the outcome is read back instead.
                ok = await self._settle(target, exc)
            if not ok:
                self._mark_lost()
                self._raise_if_lost()
            if self.lease is not None:
                self._valid_until = started + self.lease
            self._committed = target

    async def _settle(self, target: EventPosition, exc: BaseException) -> bool:
        """After a commit that failed: whether it happened after all (True), or was fenced (False).

        A connection lost during COMMIT leaves the outcome unknown; the row
        says it. A commit that surely did not happen stops the watcher: the
        loop must not go on to the next event as if this one were handled.
        """
        with contextlib.suppress(*self._backend.transient, CheckpointError):
            await self._backend.rollback()
        await self._reconnect()
        row = await self._retrying("reading the checkpoint back", lambda: self._backend.read(self.name))
        if row is not None and row[3] != self._epoch:
            return False
        if row is not None and row[2] == str(target):
            return True
        self._failed = CheckpointError(
            f"checkpoint {self.name!r} in {self.url}: the commit of {target} failed ({exc}); the writes "
            "of transaction() were rolled back and the position did not move: the event is given again "
            "when the watcher is started again",
            url=self.url,
        )
        raise self._failed

    # --- the watcher's side ---

    async def _open(self, stream: StreamId, label: str) -> EventPosition | None:
        """Connect, check the stream, take the checkpoint (waiting for the lease); the position."""
        if self._in_use:
            raise CheckpointError(f"{self!r} is already in use by another watcher", url=self.url)
        self._in_use = True
        self._lost = False
        self._failed = None
        self._lock = asyncio.Lock()  # of this event loop
        self._lost_event = asyncio.Event()
        await self._backend.connect()
        text = json.dumps(stream.as_json(), sort_keys=True)
        try:
            row = await self._backend.read(self.name)
        except CheckpointError:
            raise
        except Exception as exc:
            # Not a failing database (connect just worked): a table of another layout.
            raise CheckpointVersionError(
                f"the table {TABLE} in {self.url} is not one this version of ogpu can read "
                f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); "
                "it may have been written by a newer version: upgrade ogpu, or use another database",
                url=self.url,
            ) from None
        if row is not None:
            self._check_row(row[0], row[1], stream)
        waited = False
        while True:
            started = time.monotonic()
            claim = await self._retrying(
                "taking the checkpoint", lambda: self._backend.claim(self.name, text, self.holder, self.lease)
            )
            self._check_row(FORMAT, claim.stream, stream)
            if claim.epoch is not None:
                break
            if not waited:
                log.info(
                    "%s: checkpoint %r is held by another replica; waiting for its lease", label, self.name
                )
                waited = True
            assert self.lease is not None
            # Polled every quarter of the lease (a holder that leaves hands over at once), and
            # right when the holder's lease lapses unless it renews first.
            poll = min(1.0, self.lease / 4)
            lapse = claim.lapses_in
            await asyncio.sleep(poll if lapse is None else max(0.005, min(poll, lapse + 0.005)))
        self._epoch = claim.epoch
        if self.lease is not None:
            self._valid_until = started + self.lease
            self._renewer = asyncio.create_task(
                self._renew_loop(), name=f"ogpu.events checkpoint {self.name}"
            )
            if waited:
                log.info("%s: took over checkpoint %r (epoch %d)", label, self.name, claim.epoch)
        self._committed = None if claim.position is None else EventPosition.parse(claim.position)
        self._current = self._committed
        return self._committed

    def _check_row(self, fmt: int, saved: str | None, stream: StreamId) -> None:
        if fmt > FORMAT:
            raise CheckpointVersionError(
                f"checkpoint {self.name!r} in {self.url} was written by a newer ogpu (row format {fmt}, "
                f"this version reads {FORMAT}): upgrade ogpu, or use another checkpoint name",
                url=self.url,
            )
        if saved is None:
            return
        try:
            was = json.loads(saved)
        except ValueError:
            raise CheckpointVersionError(
                f"checkpoint {self.name!r} in {self.url} holds a stream this version cannot read",
                url=self.url,
            ) from None
        now = stream.as_json()
        for key, what in (
            ("chain_id", "chain id"),
            ("genesis", "block 0 hash (another chain with this id, or a development node restarted anew)"),
            ("nexus", "Nexus address"),
            ("events", "events"),
            ("scope", "scope"),
        ):
            if was.get(key) != now[key]:
                raise CheckpointMismatchError(
                    f"checkpoint {self.name!r} in {self.url} follows another stream: its {what} is "
                    f"{was.get(key)!r}, this watcher's is {now[key]!r}; use another checkpoint name",
                    url=self.url,
                )

    async def _before_yield(self, event: Any) -> None:
        """Called before the watcher yields ``event``: make sure the lease holds, and make it current."""
        await self._check_lease()
        self._current = event.position

    async def _check_lease(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self.lease is not None and time.monotonic() >= self._valid_until:
            # Paused past the lease, or the renewals failing: ask the database before yielding.
            async with self._lock:
                await self._renew_now()
        self._raise_if_lost()

    async def _commit_handled(self) -> None:
        """The position of the event yielded last, unless ``transaction()`` committed it already."""
        target, done = self._current, self._committed
        if self._failed is not None:
            raise self._failed
        if target is None or (done is not None and (target, target.block_hash) == (done, done.block_hash)):
            return
        await self.commit(target)

    async def commit(self, position: EventPosition) -> None:
        """Commit ``position`` alone (what the command does once an event is printed), retrying."""
        async with self._lock:
            self._raise_if_lost()
            await self._commit_or_explain(
                lambda: self._backend.save(self.name, self._epoch_now(), str(position), self.lease)
            )
            self._committed = position

    async def _commit_or_explain(self, attempt: Callable[[], Any]) -> None:
        started = time.monotonic()
        ok = await self._retrying("committing the checkpoint", attempt)
        if not ok:
            self._mark_lost()
            self._raise_if_lost()
        if self.lease is not None:
            self._valid_until = started + self.lease

    async def _retrying(self, doing: str, attempt: Callable[[], Any]) -> Any:
        """``attempt()``, retried with backoff while the database fails (each retry logged)."""
        delay = _RETRY_FIRST
        tries = 0
        while True:
            try:
                return await attempt()
            except self._backend.transient as exc:
                tries += 1
                log.warning(
                    "%s failed at %s (try %d): %s; retrying in %.2fs",
                    doing,
                    self.url,
                    tries,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(_RETRY_CAP, delay * 2)
                await self._reconnect()

    async def _reconnect(self) -> None:
        reconnect = getattr(self._backend, "reconnect", None)
        if reconnect is not None:
            with contextlib.suppress(*self._backend.transient, CheckpointError):
                await reconnect()

    def _epoch_now(self) -> int:
        if self._epoch is None:
            raise CheckpointError("the checkpoint is not open", url=self.url)
        return self._epoch

    def _mark_lost(self) -> None:
        self._lost = True
        self._lost_event.set()

    def _raise_if_lost(self) -> None:
        if self._lost:
            raise CheckpointLostError(
                f"checkpoint {self.name!r} in {self.url}: another replica took the lease (epoch "
                f"{self._epoch} is no longer this process's); nothing more is committed here",
                url=self.url,
            )

    async def _renew_now(self) -> None:
        started = time.monotonic()
        assert self.lease is not None
        ok = await self._retrying(
            "renewing the checkpoint lease",
            lambda: self._backend.renew(self.name, self._epoch_now(), self.lease or 0),
        )
        if not ok:
            self._mark_lost()
        else:
            self._valid_until = started + self.lease

    async def _renew_loop(self) -> None:
        assert self.lease is not None
        while not self._lost:
            await asyncio.sleep(self.lease / 3)
            async with self._lock:
                if self._lost:
                    return
                with contextlib.suppress(CheckpointError):
                    await self._renew_now()
            if self._lost:
                log.warning("checkpoint %r in %s: another replica took the lease", self.name, self.url)

    async def _close(self) -> None:
        """Stop renewing, hand the lease over at once (when still held), close the connection."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        try:
            if self.lease is not None and self._epoch is not None and not self._lost:
                with contextlib.suppress(*self._backend.transient, CheckpointError):
                    await self._backend.release(self.name, self._epoch)
        finally:
            await self._backend.close()
            self._epoch = None
            self._in_use = False


async def _chain_identity(url: str | tuple[str, ...]) -> tuple[int, str]:
    """The node's chain id and block 0's hash, retried like the stream's first calls."""
    from ogpu.events._net.endpoints import open_client
    from ogpu.events._net.faults import Fault, Retrier, classify
    from ogpu.events._stream.chain import parse_header

    client = open_client(url)
    retrier = Retrier(lambda: client.ever_answered, client.masked_url)
    try:
        while True:
            try:
                chain = await client.call("eth_chainId", [])
                block0 = await client.call("eth_getBlockByNumber", ["0x0", False])
                break
            except RpcError as exc:
                if classify(exc) is not Fault.TRANSIENT:
                    raise
                await retrier.pause(exc, "reading the chain id for the checkpoint")
        header = parse_header(block0, "eth_getBlockByNumber(0x0)")
        if header is None:
            raise CheckpointError(f"the node at {client.masked_url} has no block 0 to tell its chain by")
        return int(chain, 16), header.hash
    finally:
        await client.aclose()


async def _until_lost(inner: AsyncGenerator[Any, None], checkpoint: Checkpoint) -> AsyncGenerator[Any, None]:
    """``inner``'s events; with a lease, stops waiting for one as soon as the lease is lost.

    A replica that lost its lease while the chain is quiet would otherwise
    sit in the stream until the next event before it noticed.
    """
    if checkpoint.lease is None:
        async for event in inner:
            yield event
        return
    lost = asyncio.ensure_future(checkpoint._lost_event.wait())
    following: asyncio.Future[Any] | None = None
    try:
        while True:
            following = asyncio.ensure_future(inner.__anext__())
            await asyncio.wait([following, lost], return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                checkpoint._raise_if_lost()
            try:
                event = following.result()
            except StopAsyncIteration:
                return
            following = None
            yield event
    finally:
        # The generator is left while a step of ``inner`` runs (lost, cancelled): stop that step.
        for task in (following, lost):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await task


async def checkpointed(
    checkpoint: Checkpoint,
    make: Callable[[EventPosition | None], AsyncGenerator[Any, None]],
    url: str | tuple[str, ...],
    nexus: str,
    events: tuple[str, ...],
    field: str | None,
    scope: str | None,
    label: str,
    *,
    auto_commit: bool = True,
) -> AsyncGenerator[Any, None]:
    """A watcher over ``checkpoint``: resumed after its position, each event committed once handled.

    ``make(position)`` builds the inner watcher (``after=position``, or
    ``from_block`` while there is none). With ``auto_commit`` the position of
    an event is committed when the loop asks for the next one (unless
    ``transaction()`` already did); the command commits itself, after
    printing.
    """
    try:
        chain_id, genesis = await _chain_identity(url)
        stream = StreamId(chain_id, genesis, nexus, events, field, scope)
        position = await checkpoint._open(stream, label)
        inner = make(position)
        steps = _until_lost(inner, checkpoint)
        # Closed in this order: the steps (stopping any step of inner still running), then inner.
        async with contextlib.aclosing(inner), contextlib.aclosing(steps):
            async for event in steps:
                await checkpoint._before_yield(event)
                yield event
                if auto_commit:
                    # The loop asks for the next event: this one is handled.
                    await checkpoint._commit_handled()
    finally:
        await checkpoint._close()
