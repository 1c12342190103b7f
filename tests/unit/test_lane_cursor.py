"""The lane's cursor rule, by table: what a read must cover, and what it must stand on."""

from __future__ import annotations

import pytest

from ogpu.events._stream.lane import Lane

A27, B27 = "0x" + "a" * 64, "0x" + "b" * 64


def lane_read_through_27(hash_at_27: str | None) -> Lane:
    lane = Lane(confirmations=0)
    lane.start(25, 25)
    lane.covered(26, 27, hash_at_27)
    lane.advance(27)
    return lane


@pytest.mark.parametrize(
    ("hash_at_27", "below", "below_hash", "continues"),
    [
        (A27, 27, A27, True),  # the next read stands on the block the last one reached
        (A27, 27, B27, False),  # block 27 is another block now: the chain moved under the reads
        (None, 27, B27, True),  # the last read did not show block 27: nothing known, nothing said
        (A27, 26, B27, True),  # a read from elsewhere than the lane's end: not this check's business
    ],
)
def test_a_read_continues_only_from_the_block_the_last_read_reached(
    hash_at_27: str | None, below: int, below_hash: str, continues: bool
) -> None:
    assert lane_read_through_27(hash_at_27).continues(below, below_hash) is continues


def test_a_rewind_below_the_reads_end_forgets_its_hash() -> None:
    lane = lane_read_through_27(A27)
    lane.rewind(20, {})
    lane.covered(21, 27)  # read again on the new branch, its end not shown
    assert lane.continues(27, B27)
