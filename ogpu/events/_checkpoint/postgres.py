"""The Postgres backend of ``Checkpoint`` (psycopg 3, the ``ogpu[postgres]`` extra).

Imported only for a ``postgresql://`` URL, and psycopg itself only when the
watcher starts, so the core install never needs it.

Lease times are the database's clock (``clock_timestamp()``), so replicas
on several hosts agree on when a lease lapses whatever their own clocks say.
Each session sets ``idle_in_transaction_session_timeout`` to the lease: a
holder stopped inside ``transaction()`` (SIGSTOP, a long GC pause, a
partition) would otherwise keep its row locks, and the replica that takes
over would wait on them; the server ends that session instead, its writes
are rolled back, and its commit fails.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ogpu._errors import CheckpointError
from ogpu.chain import mask_url
from ogpu.events._checkpoint.store import FORMAT, TABLE, Backend, Claim

__all__ = ["PostgresBackend"]

_NOW = "extract(epoch from clock_timestamp())"


def _psycopg(masked: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise CheckpointError(
            f"the checkpoint {masked} needs psycopg 3, which is not installed: pip install 'ogpu[postgres]'",
            url=masked,
        ) from None
    return psycopg


class PostgresBackend(Backend):
    """One ``psycopg.AsyncConnection`` (not autocommit: every operation ends in a commit or rollback)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.masked_url = mask_url(url)
        self.conn: Any = None
        self.transient: tuple[type[BaseException], ...] = ()
        self._idle_timeout_ms = 0

    def set_lease(self, lease: float | None) -> None:
        # A second more than the lease: a holder's transaction that outlasts its lease is lost anyway.
        self._idle_timeout_ms = 0 if lease is None else int((lease + 1.0) * 1000)

    async def connect(self) -> None:
        psycopg = _psycopg(self.masked_url)
        # A failing or lost connection, and the server ending a session idle in a transaction
        # (class 25, not an OperationalError), which the lease's timeout does on purpose.
        self.transient = (
            psycopg.OperationalError,
            psycopg.InterfaceError,
            psycopg.errors.SerializationFailure,
            *(
                getattr(psycopg.errors, name)
                for name in ("IdleInTransactionSessionTimeout",)
                if hasattr(psycopg.errors, name)
            ),
        )
        try:
            self.conn = await psycopg.AsyncConnection.connect(self.url, connect_timeout=5)
        except psycopg.Error as exc:
            raise CheckpointError(
                f"cannot connect to the checkpoint database {self.masked_url}: {_first_line(exc, self.url)}; "
                "check that the server runs, and the user, password and database name in the URL",
                url=self.masked_url,
            ) from None
        try:
            if self._idle_timeout_ms:
                # Committed on its own: a rolled-back transaction would take the setting back with it.
                await self.conn.execute(f"SET idle_in_transaction_session_timeout = {self._idle_timeout_ms}")
                await self.conn.commit()
            await self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY, format INTEGER NOT NULL, "
                "stream TEXT, position TEXT, epoch BIGINT NOT NULL DEFAULT 0, holder TEXT, "
                "lease_until DOUBLE PRECISION)"
            )
            await self.conn.commit()
        except psycopg.errors.UniqueViolation:
            # Two replicas creating the table at once: the other one won, which is as good.
            await self.conn.rollback()
        except psycopg.Error as exc:
            await self.close()
            raise CheckpointError(
                f"cannot use the checkpoint database {self.masked_url}: {_first_line(exc, self.url)}",
                url=self.masked_url,
            ) from None

    async def reconnect(self) -> None:
        await self.close()
        await self.connect()

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await self.conn.close()
            self.conn = None

    def _c(self) -> Any:
        if self.conn is None or self.conn.closed:
            psycopg = _psycopg(self.masked_url)
            raise psycopg.OperationalError("the connection to the checkpoint database is closed")
        return self.conn

    async def read(self, name: str) -> tuple[int, str | None, str | None, int] | None:
        conn = self._c()
        try:
            cur = await conn.execute(
                f"SELECT format, stream, position, epoch FROM {TABLE} WHERE name = %s", (name,)
            )
            row = await cur.fetchone()
            await conn.commit()
        except BaseException:
            await self.rollback()
            raise
        return None if row is None else (int(row[0]), row[1], row[2], int(row[3]))

    async def claim(self, name: str, stream: str, holder: str, lease: float | None) -> Claim:
        conn = self._c()
        try:
            await conn.execute(
                f"INSERT INTO {TABLE} (name, format, stream, position, epoch) VALUES (%s, %s, %s, NULL, 0) "
                "ON CONFLICT (name) DO NOTHING",
                (name, FORMAT, stream),
            )
            if lease is None:
                cur = await conn.execute(
                    f"UPDATE {TABLE} SET epoch = epoch + 1, holder = NULL, lease_until = NULL, "
                    "stream = COALESCE(stream, %s) WHERE name = %s RETURNING epoch, position, stream",
                    (stream, name),
                )
            else:
                cur = await conn.execute(
                    f"UPDATE {TABLE} SET epoch = epoch + 1, holder = %s, lease_until = {_NOW} + %s, "
                    "stream = COALESCE(stream, %s) WHERE name = %s "
                    f"AND (holder IS NULL OR lease_until IS NULL OR lease_until < {_NOW}) "
                    "RETURNING epoch, position, stream",
                    (holder, lease, stream, name),
                )
            row = await cur.fetchone()
            if row is None:
                cur = await conn.execute(
                    f"SELECT position, stream, lease_until - {_NOW} FROM {TABLE} WHERE name = %s", (name,)
                )
                held = await cur.fetchone()
                await conn.commit()
                return Claim(None, held[0], held[1], None if held[2] is None else float(held[2]))
            await conn.commit()
            return Claim(int(row[0]), row[1], row[2])
        except BaseException:
            await self.rollback()
            raise

    async def renew(self, name: str, epoch: int, lease: float) -> bool:
        conn = self._c()
        try:
            cur = await conn.execute(
                f"UPDATE {TABLE} SET lease_until = {_NOW} + %s WHERE name = %s AND epoch = %s",
                (lease, name, epoch),
            )
            await conn.commit()
        except BaseException:
            await self.rollback()
            raise
        return bool(cur.rowcount == 1)

    async def release(self, name: str, epoch: int) -> None:
        conn = self._c()
        try:
            await conn.execute(
                f"UPDATE {TABLE} SET holder = NULL, lease_until = NULL WHERE name = %s AND epoch = %s",
                (name, epoch),
            )
            await conn.commit()
        except BaseException:
            await self.rollback()
            raise

    async def save(self, name: str, epoch: int, position: str, lease: float | None) -> bool:
        self._c()
        return await self.finish(name, epoch, position, lease)

    async def begin(self) -> Any:
        conn = self._c()
        # A cheap round trip: a connection that died while idle fails here, before the user's writes.
        await conn.execute("SELECT 1")
        return conn

    async def finish(self, name: str, epoch: int, position: str, lease: float | None) -> bool:
        conn = self._c()
        try:
            if lease is None:
                cur = await conn.execute(
                    f"UPDATE {TABLE} SET position = %s WHERE name = %s AND epoch = %s",
                    (position, name, epoch),
                )
            else:
                cur = await conn.execute(
                    f"UPDATE {TABLE} SET position = %s, lease_until = {_NOW} + %s "
                    "WHERE name = %s AND epoch = %s",
                    (position, lease, name, epoch),
                )
            if cur.rowcount != 1:
                await conn.rollback()
                return False
            await conn.commit()
            return True
        except BaseException:
            await self.rollback()
            raise

    async def rollback(self) -> None:
        if self.conn is not None and not self.conn.closed:
            with contextlib.suppress(Exception):
                await self.conn.rollback()


def _first_line(exc: BaseException, url: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.replace(url, mask_url(url))
