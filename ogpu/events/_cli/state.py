"""``ogpu-events --state FILE``: where a command left off, saved after every event it prints.

The file is a small JSON object, written whole to a temporary file in the
same folder, flushed to disk and renamed over FILE, so a crash at any
moment leaves either the previous position or the new one, never half of
either::

    {"version": 1, "chain_id": 1071, "nexus": "0x2b0c...",
     "events": ["Attempted"], "scope": {"field": "task", "address": "0x9f3a..."},
     "position": "1207:3:0x5b1e...", "genesis": "0xd4e5..."}

``genesis`` (block 0's hash) says which chain the position was taken on: a
development node restarted on the same port serves a new chain under the
same id, and the position means nothing there (see ``replaced``).

``events`` and ``scope`` say which stream the position belongs to (``scope``
is ``null`` for ``tail``): a position is only meaningful for the same
events of the same Nexus on the same chain, so a file written by another
kind of command, or for another chain, is refused rather than followed.

One command at a time: two sharing a file would print the same events and
overwrite each other's position. The file itself is replaced at every save,
so the lock (``flock``) is held on ``.FILE.lock`` beside it, which names the
holder's pid and is removed when the command ends.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ogpu._errors import InvalidArgumentError
from ogpu.events._codec.position import EventPosition

__all__ = ["STATE_VERSION", "FollowedEvents", "StateFile", "StateFileError"]

STATE_VERSION = 1


class StateFileError(InvalidArgumentError):
    """A state file that cannot be used (bad input): the command reports it and exits 2."""


@dataclass(frozen=True, slots=True)
class FollowedEvents:
    """What the command follows, and a position in a state file belongs to: chain, Nexus, events and scope."""

    chain_id: int
    nexus: str
    events: tuple[str, ...]
    field: str | None
    scope: str | None  # 40 lowercase hex digits, without 0x
    # The chain's block 0 hash: a development node restarted on the same port
    # serves a new chain under the same id. None in files written before it.
    genesis: str | None = None

    def in_words(self) -> str:
        if self.field is not None:
            return f"{', '.join(self.events)} events of {self.field} 0x{self.scope}"
        return f"unscoped {', '.join(self.events)} events"


class StateFile:
    """One ``--state`` file: read once at start, saved after each printed event."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        folder = self.path.parent
        if not folder.is_dir():
            raise StateFileError(f"--state {path}: the folder {str(folder)!r} does not exist")
        if self.path.exists() and self.path.is_dir():
            raise StateFileError(f"--state {path} is a folder, not a file")
        self.lock_path = folder / f".{self.path.name}.lock"
        self._lock_fd: int | None = None

    def lock(self) -> None:
        """Hold the file for this process, or raise ``StateFileError`` naming the one that holds it.

        Where ``flock`` is missing (Windows) or the filesystem refuses it,
        the command runs unlocked, as before.
        """
        try:
            import fcntl
        except ImportError:
            return
        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StateFileError(f"cannot create the lock file {self.lock_path}: {exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    return  # a filesystem without locks: run unlocked
                by = f" (pid {holder})" if holder.isdigit() else ""
                raise StateFileError(
                    f"the state file {self.path} is in use by another ogpu-events{by}: two commands on "
                    "one file would print the same events; stop the other one or give this one its own FILE"
                ) from None
            # Its holder may have removed the lock file between our open and
            # our flock: then this lock is on a file nobody else will open.
            try:
                current = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._lock_fd = fd

    def release(self) -> None:
        """Remove the lock file and let it go (the kernel lets go too when the process dies)."""
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.lock_path)  # while still held: whoever opens it next makes a new one
        os.close(self._lock_fd)
        self._lock_fd = None

    def load(self) -> tuple[FollowedEvents, EventPosition] | None:
        """What was followed and the position saved in the file; ``None`` when the file does not exist yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StateFileError(f"cannot read the state file {self.path}: {exc}") from None
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, this command reads {STATE_VERSION}")
            scope = data["scope"]
            followed = FollowedEvents(
                chain_id=_int(data["chain_id"]),
                nexus=str(data["nexus"]).lower(),
                events=tuple(str(name) for name in data["events"]),
                field=None if scope is None else str(scope["field"]),
                scope=None if scope is None else str(scope["address"]).lower().removeprefix("0x"),
                genesis=None if data.get("genesis") is None else str(data["genesis"]).lower(),
            )
            position = EventPosition.parse(data["position"])
        except (ValueError, KeyError, TypeError, InvalidArgumentError) as exc:
            raise StateFileError(
                f"the state file {self.path} is not one ogpu-events wrote ({exc}); "
                "move it away to start afresh"
            ) from None
        return followed, position

    @staticmethod
    def replaced(saved: FollowedEvents, wanted: FollowedEvents) -> bool:
        """Whether the node's chain is not the one the position was saved on (another block 0)."""
        return saved.genesis is not None and wanted.genesis is not None and saved.genesis != wanted.genesis

    def check(self, saved: FollowedEvents, wanted: FollowedEvents) -> None:
        """Refuse a position saved for another chain or another kind of command."""
        if (saved.chain_id, saved.nexus) != (wanted.chain_id, wanted.nexus):
            raise StateFileError(
                f"the state file {self.path} was written for chain {saved.chain_id} (Nexus {saved.nexus}), "
                f"but the node serves chain {wanted.chain_id} (Nexus {wanted.nexus})"
            )
        if (sorted(saved.events), saved.field, saved.scope) != (
            sorted(wanted.events),
            wanted.field,
            wanted.scope,
        ):
            raise StateFileError(
                f"the state file {self.path} was written for {saved.in_words()}, "
                f"not for {wanted.in_words()} as this command asks"
            )

    def save(self, followed: FollowedEvents, position: EventPosition) -> None:
        """Replace the file's content atomically: temporary file, fsync, rename, fsync of the folder."""
        record: dict[str, Any] = {
            "version": STATE_VERSION,
            "chain_id": followed.chain_id,
            "nexus": followed.nexus,
            "events": list(followed.events),
            "scope": None
            if followed.field is None
            else {"field": followed.field, "address": f"0x{followed.scope}"},
            "position": str(position),
        }
        if followed.genesis is not None:
            record["genesis"] = followed.genesis
        folder = self.path.parent
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        # The rename itself is durable only once the folder's entry is on disk.
        with contextlib.suppress(OSError):
            directory = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"chain_id {value!r} is not an int")
    return value
