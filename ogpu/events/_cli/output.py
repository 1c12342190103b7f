"""How ``ogpu-events`` shows events: aligned lines for people, JSON lines for programs.

Both renderings take any Nexus event dataclass. Enums appear by name and
``Environment`` flags by their flag names, so nobody has to remember that
status 5 means FINALIZED. JSON keeps integers exact (Python's ``json``
writes arbitrarily large ints as plain numbers) and full strings; the human
line shortens long strings so one event stays one readable line and shows
amounts in OGPU beside the exact wei. The time shown is the block's, never
the moment of printing: during a catch-up those differ by days.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import time
from collections.abc import Callable
from enum import Enum, IntFlag
from typing import Any, TextIO

from ogpu.events._codec.models import CHAIN_FIELDS

__all__ = [
    "CatchUpProgress",
    "event_record",
    "flag_names",
    "human_header",
    "human_line",
    "json_line",
    "ogpu_amount",
]

# Longest Nexus event name (ResponseStatusChanged), so the field columns line up.
NAME_WIDTH = 21
BLOCK_WIDTH = 9
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
TIME_WIDTH = 19
# Source URLs can be kilobytes long; a terminal line shows this much of them.
MAX_HUMAN_STRING = 96

_HEX = re.compile(r"^0x[0-9a-fA-F]*$")  # addresses and hashes: shown bare
# Fields that hold an amount of OGPU in wei (18 decimals, like ether).
_AMOUNT_FIELDS = frozenset({"suggested_payment", "min_payment", "min_available_lockup"})
WEI_PER_OGPU = 10**18


def ogpu_amount(wei: int) -> str:
    """``2500000000000000000`` -> ``2.5 OGPU``: exact, with no float rounding."""
    whole, frac = divmod(abs(wei), WEI_PER_OGPU)
    sign = "-" if wei < 0 else ""
    decimals = f".{frac:018d}".rstrip("0") if frac else ""
    return f"{sign}{whole:,}{decimals} OGPU"


def flag_names(value: IntFlag) -> list[str]:
    """Names of the single flags set in ``value``, in definition order (empty for 0).

    Spelled out by hand because Python 3.10 gives combined flags no ``name``.
    Bits the flag class does not define (a newer contract's) come last, as
    ``UNKNOWN_<bits>``, so they are shown rather than lost.
    """
    names = [member.name for member in type(value) if member.name and member.value and member in value]
    known = 0
    for member in type(value):
        known |= member.value
    extra = int(value) & ~known
    return [*names, f"UNKNOWN_{extra}"] if extra else names


def _plain(value: Any) -> Any:
    """A JSON-ready form of one field value."""
    if isinstance(value, IntFlag):
        return flag_names(value)
    if isinstance(value, Enum):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def event_record(event: Any, block_timestamp: int | None = None) -> dict[str, Any]:
    """``event`` as a flat dict: ``event`` name, payload fields, then where it sits on chain.

    ``block_timestamp`` (Unix seconds, the block's own time) comes last, and
    only when it is known.
    """
    record: dict[str, Any] = {"event": type(event).event_name}
    for field in dataclasses.fields(event):
        if field.name not in CHAIN_FIELDS:
            record[field.name] = _plain(getattr(event, field.name))
    for name in CHAIN_FIELDS:
        record[name] = getattr(event, name)
    if block_timestamp is not None:
        record["block_timestamp"] = block_timestamp
    return record


def json_line(event: Any, block_timestamp: int | None = None) -> str:
    # ensure_ascii keeps the output valid on any terminal encoding and for any log shipper.
    return json.dumps(event_record(event, block_timestamp), separators=(",", ":"))


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
        if field.name in CHAIN_FIELDS:
            continue
        value = getattr(event, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            # SourceParams: its fields inline, their names do not clash with the event's.
            parts.extend(_human_fields(value))
        elif field.name in _AMOUNT_FIELDS and isinstance(value, int):
            parts.append(f"{field.name}={value} ({ogpu_amount(value)})")
        else:
            parts.append(f"{field.name}={_human_value(value)}")
    return parts


def human_header(*, with_time: bool = True) -> str:
    """The column titles above :func:`human_line` output (printed on terminals only)."""
    zone = time.strftime("%Z") or "local"
    stamp = f"{'BLOCK TIME (' + zone + ')':<{TIME_WIDTH}} " if with_time else ""
    return f"{stamp}{'BLOCK':>{BLOCK_WIDTH}} {'EVENT':<{NAME_WIDTH}} FIELDS"


def human_line(event: Any, block_time: float | None = None, *, with_time: bool = True) -> str:
    """``YYYY-MM-DD HH:MM:SS  block  EventName  field=value ...``, the block's time in local time.

    ``block_time`` is the block's timestamp; when it is unknown the column
    holds a dash, so the other columns stay aligned. ``with_time=False``
    leaves the column out altogether.
    """
    name = type(event).event_name
    fields = " ".join(_human_fields(event))
    line = f"{event.block_number:>{BLOCK_WIDTH}} {name:<{NAME_WIDTH}} {fields}"
    if not with_time:
        return line
    stamp = "-" if block_time is None else time.strftime(TIME_FORMAT, time.localtime(block_time))
    return f"{stamp:<{TIME_WIDTH}} {line}"


_LONG_HEX = re.compile(r"0x[0-9a-fA-F]{40,}")


def fit_width(line: str, width: int) -> str:
    """``line`` within ``width`` columns, for a terminal (``width`` 0: unknown, left as is).

    Addresses and hashes are shortened first (``0x2b0c…a6a1``), which keeps
    every field's name and value readable; a line still too long is cut,
    ending in ``…``. Pipes and ``--json`` get whole lines.
    """
    if width <= 0 or len(line) <= width:
        return line
    line = _LONG_HEX.sub(lambda match: f"{match.group()[:6]}\u2026{match.group()[-4:]}", line)
    if len(line) <= width:
        return line
    return line[: max(1, width - 1)] + "\u2026"


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
        smoothing: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty()
        self._delay = delay
        self._min_interval = min_interval
        self._smoothing = smoothing
        self._clock = clock
        self._started = clock()
        self._last: tuple[float, int] | None = None
        self._rate: float | None = None
        self._drawn_at: float | None = None
        self.shown = False

    def __call__(self, first: int, scanned_up_to: int, last: int) -> None:
        if not self._enabled:
            return
        now = self._clock()
        done = scanned_up_to - first + 1
        self._measure(now, done)
        if scanned_up_to >= last:
            self.clear()
            return
        if now - self._started < self._delay:
            return
        if self._drawn_at is not None and now - self._drawn_at < self._min_interval:
            return
        self._drawn_at = now
        total = last - first + 1
        line = f"\rcatching up: {done:,} of {total:,} blocks scanned ({100 * done // total}%)"
        if self._rate is not None:
            left = _duration((last - scanned_up_to) / self._rate)
            line += f", {self._rate:,.0f} blocks/s, {left} left"
        self._stream.write(line + "\x1b[K")
        self._stream.flush()
        self.shown = True

    def _measure(self, now: float, done: int) -> None:
        """Fold the speed since the previous chunk into an exponentially weighted rate.

        Chunks come unevenly (a slow first answer, then a burst; chunks that
        grow after successes), so the rate of the last chunk alone makes the
        estimate jump. Each chunk's rate weighs by the time it covers, with
        older chunks fading over ``smoothing`` seconds. Nothing is measured
        before the first chunk, so time spent connecting does not count.
        """
        last, self._last = self._last, (now, done)
        if last is None or now <= last[0] or done <= last[1]:
            return
        elapsed = now - last[0]
        sample = (done - last[1]) / elapsed
        if self._rate is None:
            self._rate = sample
        else:
            self._rate += (1 - math.exp(-elapsed / self._smoothing)) * (sample - self._rate)

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
