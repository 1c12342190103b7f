"""The filter's doubt and the contradicted-read check, driven by tables (no I/O, no node).

Each row is a story a node can tell; the table says what the stream may
believe after it: which blocks the cover reads, when the filter is proven,
which of its logs may be delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ogpu.events._net.headers import Header
from ogpu.events._stream.chain import ChainView
from ogpu.events._stream.doubt import FilterDoubt
from ogpu.events._stream.screen import first_contradicted


def h(n: int, tag: str = "a") -> str:
    return f"0x{tag * 2}{n:062x}"


@dataclass
class Row:
    name: str
    installed_at: int  # the cursor when the filter was installed
    reads: list[tuple[int, int]]  # cover reads, in order
    reported: list[tuple[int, str]]  # (block, hash) of the logs the filter reported
    pinned: dict[int, str]  # what headers showed
    proven_from: int | None
    active: bool  # still in doubt at the end
    deliverable: dict[int, bool] = field(default_factory=dict)


ROWS = [
    Row("no log reported: the doubt stays", 8, [(9, 12)], [], {}, None, True, {12: True, 13: False}),
    Row(
        "a log above the covered blocks, shown by a header: proven once the cover reaches below it",
        8,
        [(9, 11)],
        [(12, h(12))],
        {12: h(12)},
        12,
        False,
        {13: True},
    ),
    Row(
        "proven, but the cover has not read the block below the proof: still in doubt",
        8,
        [(9, 10)],
        [(12, h(12))],
        {12: h(12)},
        12,
        True,
        {11: False, 12: False},
    ),
    Row(
        "a stale log (another hash at its height) proves nothing",
        8,
        [(9, 11)],
        [(12, h(12, "b"))],
        {12: h(12)},
        None,
        True,
    ),
    Row("a log no header has shown yet proves nothing yet", 8, [(9, 11)], [(12, h(12))], {}, None, True),
    Row(
        "a log at or below the covered blocks owes nothing and proves nothing (a proxy's replay)",
        8,
        [(9, 11)],
        [(5, h(5))],
        {5: h(5)},
        None,
        True,
    ),
    Row(
        "a log far beyond every head is the triage's to drop, never a proof",
        8,
        [(9, 11)],
        [(500, h(500))],
        {500: h(500)},
        None,
        True,
    ),
    Row(
        "a cover read that does not join the covered blocks covers nothing",
        8,
        [(11, 12)],
        [(13, h(13))],
        {13: h(13)},
        13,
        True,
        {8: True, 9: False},
    ),
    Row(
        "the lowest proof wins",
        8,
        [(9, 11)],
        [(15, h(15)), (12, h(12))],
        {12: h(12), 15: h(15)},
        12,
        False,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_filter_doubt(row: Row) -> None:
    doubt = FilterDoubt()
    doubt.begin(row.installed_at)
    for first, last in row.reads:
        doubt.read(first, last)
    doubt.note(row.reported, row.pinned.get, beyond=100)
    doubt.settle()
    assert doubt.proven_from == row.proven_from
    assert doubt.active is row.active
    for block, may in row.deliverable.items():
        assert doubt.deliverable(block) is may, block


@pytest.mark.parametrize(
    ("covered", "safe_end", "expected"),
    [
        (8, 10, (9, 10)),
        (8, 9, (9, 9)),  # the safe end, not a head only one answer showed (see ChainView.safe_end)
        (8, None, None),  # no head shown twice yet: nothing is read
        (10, 10, None),
        (None, 10, None),  # no doubt: nothing to read
    ],
)
def test_cover_range_reaches_only_the_safe_end(
    covered: int | None, safe_end: int | None, expected: tuple[int, int] | None
) -> None:
    doubt = FilterDoubt()
    if covered is not None:
        doubt.begin(covered)
    assert doubt.cover_range(safe_end) == expected


def test_a_reorg_brings_the_doubt_back_from_the_fork() -> None:
    doubt = FilterDoubt()
    doubt.begin(8)
    doubt.read(9, 11)
    doubt.note([(12, h(12))], {12: h(12)}.get, beyond=100)
    assert doubt.settle() and not doubt.active
    doubt.rewound(6)
    assert doubt.active and doubt.covered == 6 and doubt.proven_from is None
    assert doubt.cover_range(12) == (7, 12)


def _view(pins: dict[int, str]) -> ChainView:
    view = ChainView()
    top = max(pins)
    for number in sorted(pins):
        parent = pins.get(number - 1, h(number - 1, "f"))
        view.observe(Header(number, pins[number], parent), {})
    assert view.head == top
    return view


def _log(block: int, block_hash: str, removed: bool = False) -> dict[str, object]:
    return {"blockNumber": hex(block), "blockHash": block_hash, "logIndex": "0x0", "removed": removed}


@pytest.mark.parametrize(
    ("logs", "expected"),
    [
        ([_log(5, h(5)), _log(6, h(6))], None),
        ([_log(5, h(5)), _log(6, h(6, "b")), _log(7, h(7, "b"))], 6),  # the first block that moved
        ([_log(6, h(6, "b"), removed=True)], None),  # a removal says nothing about the read's chain
        ([_log(50, h(50, "b"))], None),  # not pinned: nothing to contradict
    ],
)
def test_first_contradicted_block_of_a_read(logs: list[dict[str, object]], expected: int | None) -> None:
    view = _view({n: h(n) for n in range(3, 9)})
    assert first_contradicted(view, logs) == expected


@pytest.mark.parametrize(
    ("number", "header_hash", "holds"),
    [
        (5, h(5), True),  # the block below the read is the pinned one
        (5, h(5, "b"), False),  # it changed: the chain moved under the read
        (50, h(50, "b"), True),  # nothing pinned there: nothing to say
    ],
)
def test_a_read_holds_while_the_block_below_it_is_the_pinned_one(
    number: int, header_hash: str, holds: bool
) -> None:
    view = _view({n: h(n) for n in range(3, 9)})
    assert view.holds(number, Header(number, header_hash, h(number - 1))) is holds
    # A height that no longer holds is asked for again next tick, which finds the fork.
    assert (number in view.checks()) is not holds
