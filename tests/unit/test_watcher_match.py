"""``WatcherMatch``: the one answer to "does this raw log match the watcher" (history, after=, routing)."""

from __future__ import annotations

import pytest

from ogpu.events._codec.abi import EVENTS, EventSpec, RawLog
from ogpu.events._stream.screen import WatcherMatch

ATTEMPTED = EVENTS["Attempted"]
PUBLISHED = EVENTS["TaskPublished"]
TASK = "ab" * 20
OTHER = "cd" * 20


def raw_log(spec: EventSpec, address: str, field: str, topic: str | None = None) -> RawLog:
    """A log of ``spec`` whose ``field`` holds ``address`` (hex, no 0x), the rest zero."""
    words = max(spec.data_word_of_field.values()) + 1
    data = list("0x" + "00" * 32 * words)
    where = spec.scope_slice(field)
    data[where] = list(address)
    return {"topics": [topic or spec.topic0], "data": "".join(data)}


@pytest.mark.parametrize(
    ("raw", "wanted"),
    [
        (raw_log(ATTEMPTED, TASK, "task"), True),
        (raw_log(ATTEMPTED, TASK.upper(), "task"), True),  # a node that spells hex in capitals
        (raw_log(ATTEMPTED, OTHER, "task"), False),  # another task's
        (raw_log(ATTEMPTED, TASK, "task", ATTEMPTED.topic0.upper().replace("0X", "0x")), True),
        (raw_log(PUBLISHED, TASK, "source"), False),  # another event
        ({"topics": [], "data": "0x"}, False),  # an anonymous log
    ],
)
def test_a_scoped_watcher_wants_its_event_of_its_address_only(raw: RawLog, wanted: bool) -> None:
    match = WatcherMatch([ATTEMPTED], "task", TASK)
    assert (match.spec_of(raw) is ATTEMPTED) is wanted


def test_an_unscoped_watcher_wants_every_log_of_its_events() -> None:
    match = WatcherMatch([ATTEMPTED, PUBLISHED], None, None)
    assert match.spec_of(raw_log(PUBLISHED, OTHER, "source")) is PUBLISHED
    assert match.spec_of(raw_log(ATTEMPTED, OTHER, "task")) is ATTEMPTED
    assert match.spec_of(raw_log(EVENTS["Registered"], OTHER, "source")) is None
