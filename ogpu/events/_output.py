"""How ``ogpu-events`` shows events: aligned lines for people, JSON lines for programs.

Both renderings take any Nexus event dataclass. Enums appear by name and
``Environment`` flags by their flag names, so nobody has to remember that
status 5 means FINALIZED. JSON keeps integers exact (Python's ``json``
writes arbitrarily large ints as plain numbers) and full strings; the human
line shortens long strings so one event stays one readable line.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from collections.abc import Callable
from enum import Enum, IntFlag
from typing import Any, TextIO

__all__ = ["CatchUpProgress", "event_record", "flag_names", "human_line", "json_line"]

# Longest Nexus event name (ResponseStatusChanged), so the field columns line up.
NAME_WIDTH = 21
BLOCK_WIDTH = 9
# Source URLs can be kilobytes long; a terminal line shows this much of them.
MAX_HUMAN_STRING = 96

_HEX = re.compile(r"^0x[0-9a-fA-F]*$")  # addresses and hashes: shown bare
_CHAIN_FIELDS = ("block_number", "transaction_hash", "log_index", "block_hash")


def flag_names(value: IntFlag) -> list[str]:
    """Names of the single flags set in ``value``, in definition order (empty for 0).

    Spelled out by hand because Python 3.10 gives combined flags no ``name``.
    """
    return [member.name for member in type(value) if member.name and member.value and member in value]


def _plain(value: Any) -> Any:
    """A JSON-ready form of one field value."""
    if isinstance(value, IntFlag):
        return flag_names(value)
    if isinstance(value, Enum):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def event_record(event: Any) -> dict[str, Any]:
    """``event`` as a flat dict: ``event`` name, payload fields, then where it sits on chain."""
    record: dict[str, Any] = {"event": type(event).event_name}
    for field in dataclasses.fields(event):
        if field.name not in _CHAIN_FIELDS:
            record[field.name] = _plain(getattr(event, field.name))
    for name in _CHAIN_FIELDS:
        record[name] = getattr(event, name)
    return record


def json_line(event: Any) -> str:
    # ensure_ascii keeps the output valid on any terminal encoding and for any log shipper.
    return json.dumps(event_record(event), separators=(",", ":"))


def _human_value(value: Any) -> str:
    if isinstance(value, IntFlag):
        return "|".join(flag_names(value)) or "NONE"
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and not _HEX.match(value):
        if len(value) <= MAX_HUMAN_STRING:
            return json.dumps(value)  # escapes newlines and control characters: one event, one line
        return f"{json.dumps(value[:MAX_HUMAN_STRING] + '...')}({len(value)} chars)"
    return str(value)


def _human_fields(event: Any) -> list[str]:
    parts: list[str] = []
    for field in dataclasses.fields(event):
        if field.name in _CHAIN_FIELDS:
            continue
        value = getattr(event, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            # SourceParams: its fields inline, their names do not clash with the event's.
            parts.extend(_human_fields(value))
        else:
            parts.append(f"{field.name}={_human_value(value)}")
    return parts


def human_line(event: Any, *, now: float | None = None) -> str:
    """``HH:MM:SS  block  EventName  field=value ...`` in local time."""
    stamp = time.strftime("%H:%M:%S", time.localtime(now))
    name = type(event).event_name
    fields = " ".join(_human_fields(event))
    return f"{stamp} {event.block_number:>{BLOCK_WIDTH}} {name:<{NAME_WIDTH}} {fields}"


class CatchUpProgress:
    """A ``ProgressCallback`` that draws one self-updating status line on a terminal.

    Silent unless ``stream`` is a terminal and the catch-up has run for
    ``delay`` seconds: a short catch-up, or output captured by a program,
    gets no progress noise.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        delay: float = 3.0,
        min_interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty()
        self._delay = delay
        self._min_interval = min_interval
        self._clock = clock
        self._started = clock()
        self._baseline: tuple[float, int] | None = None
        self._drawn_at: float | None = None
        self.shown = False

    def __call__(self, first: int, scanned_up_to: int, last: int) -> None:
        if not self._enabled:
            return
        now = self._clock()
        done = scanned_up_to - first + 1
        if self._baseline is None:
            # Rates are measured from the first chunk on, so a slow start
            # (a node that took its time to answer) does not skew the estimate.
            self._baseline = (now, done)
        if scanned_up_to >= last:
            self.clear()
            return
        if now - self._started < self._delay:
            return
        if self._drawn_at is not None and now - self._drawn_at < self._min_interval:
            return
        self._drawn_at = now
        total = last - first + 1
        since, done_then = self._baseline
        rate = (done - done_then) / (now - since) if now > since and done > done_then else 0.0
        if rate <= 0 and now > self._started:
            rate = done / (now - self._started)
        left = f"{_duration((last - scanned_up_to) / rate)} left" if rate > 0 else "time left unknown"
        self._stream.write(
            f"\rcatching up: {done:,} of {total:,} blocks scanned ({100 * done // total}%),"
            f" {rate:,.0f} blocks/s, {left}\x1b[K"
        )
        self._stream.flush()
        self.shown = True

    def clear(self) -> None:
        """Erase the status line (before an event is printed, and at the end)."""
        if self.shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self.shown = False


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
