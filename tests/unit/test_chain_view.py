"""The stream's decisions about heads and hashes, from tables of headers (no node, no I/O)."""

from __future__ import annotations

import logging

import pytest

from ogpu.events._net.answers import filter_changes, logs_in_range
from ogpu.events._net.headers import Header, parse_header
from ogpu.events._stream.chain import SPIKE, WINDOW, ChainView, Fork, HeadAnswer, LaggingBackend, LogPlace
from ogpu.events._stream.screen import triage
from ogpu.types import RpcProtocolError

NEXUS = "0x2b0cc6058313801d5feb184a539e3a0c5a87a6a1"


def h(number: int, branch: str = "a") -> str:
    """The hash of block ``number`` on ``branch``: branches share nothing."""
    return "0x" + f"{branch}{number:x}".rjust(64, "0")


def header(number: int, branch: str = "a", parent_branch: str | None = None) -> Header:
    parent = h(number - 1, parent_branch or branch) if number > 0 else "0x" + "00" * 32
    return Header(number, h(number, branch), parent)


def following(*numbers: int) -> ChainView:
    """A view that has believed these heads of branch "a", each confirmed by the next."""
    view = ChainView()
    for number in numbers:
        checked = {n: header(n) for n in view.checks() if n <= number}
        assert view.observe(header(number), checked) in (HeadAnswer.NEW, HeadAnswer.SAME)
    return view


# --- one tick's head answer ---


def test_first_head_is_believed_and_asks_for_genesis_and_anchor_next() -> None:
    view = ChainView()
    assert view.checks() == [0]
    assert view.observe(header(10), {0: header(0)}) is HeadAnswer.NEW
    assert view.head == 10
    # The anchor, and the blocks below it, to fill the window; the genesis hash is known now.
    assert view.checks() == list(range(1, 11))
    assert view.observe(header(10), {n: header(n) for n in view.checks()}) is HeadAnswer.SAME
    assert view.checks() == [10]


@pytest.mark.parametrize(
    ("latest", "anchor", "seen", "head"),
    [
        (header(11), header(10), HeadAnswer.NEW, 11),  # one block on top
        (header(15), header(10), HeadAnswer.NEW, 15),  # several blocks, anchor still there
        (header(10), header(10), HeadAnswer.SAME, 10),
        (header(9), header(10), HeadAnswer.BEHIND, 10),  # a lower head from a backend that has the anchor
        (header(10 + SPIKE + 1), header(10), HeadAnswer.HELD, 10),  # far ahead: not believed yet
        (header(11, "b", "b"), header(10, "b"), HeadAnswer.DIVERGED, 10),  # the anchor has another hash
        (header(11, "b", "b"), header(10), HeadAnswer.DIVERGED, 10),  # latest's parent is not the anchor
        (header(12), None, HeadAnswer.DIVERGED, 10),  # a higher head from a chain without the anchor
        (header(3, "b"), None, HeadAnswer.DIVERGED, 10),  # lower, and the anchor is gone: restart or lag
    ],
)
def test_a_head_answer_is_judged_against_the_anchor(
    latest: Header, anchor: Header | None, seen: HeadAnswer, head: int
) -> None:
    view = following(8, 9, 10)
    assert view.checks() == [10]
    assert view.observe(latest, {10: anchor}) is seen
    assert view.head == head


def test_the_safe_end_is_the_believed_head_until_a_higher_one_is_shown_twice() -> None:
    view = following(10)
    assert view.head_shown_twice is None and view.safe_end == 10  # the first head, asked for twice
    view = following(10, 11)
    assert (view.head, view.head_shown_twice, view.safe_end) == (11, 10, 10)
    checked = {n: header(n) for n in view.checks()}
    assert view.observe(header(11), checked) is HeadAnswer.SAME
    assert view.safe_end == 11


def test_a_lagging_answer_at_a_pinned_height_is_behind_not_a_fork() -> None:
    view = following(8, 9, 10)
    # The backend has neither block 10 nor anything new, but its head is a block we pinned.
    assert view.observe(header(9), {10: None}) is HeadAnswer.BEHIND


def test_a_far_head_is_believed_once_a_later_answer_shows_the_same_block() -> None:
    view = following(10)
    far = header(10 + 1000)
    assert view.observe(far, {10: header(10)}) is HeadAnswer.HELD
    assert far.number in view.checks()
    assert view.observe(header(1011), {10: header(10), 1010: far}) is HeadAnswer.NEW
    assert view.head == 1011


def test_a_glitched_far_head_is_dropped_when_the_chain_does_not_show_it() -> None:
    view = following(10)
    assert view.observe(Header(1010, h(1010, "z"), h(1009, "z")), {10: header(10)}) is HeadAnswer.HELD
    assert view.observe(header(11), {10: header(10), 1010: None}) is HeadAnswer.NEW
    assert view.head == 11
    assert 1010 not in view.checks()


# --- logs against the pinned chain ---


def test_log_places() -> None:
    view = following(9, 10)
    assert view.place_log(10, h(10)) is LogPlace.OK
    assert view.place_log(10, h(10, "b")) is LogPlace.STALE
    assert view.place_log(12, h(12)) is LogPlace.AHEAD
    assert view.place_log(10 + SPIKE + 1, h(99)) is LogPlace.BEYOND
    assert view.place_log(2**64, h(99)) is LogPlace.BEYOND


def test_an_unpinned_log_hash_is_a_claim_checked_in_the_next_tick() -> None:
    view = following(5, 10)
    assert view.place_log(7, h(7, "b")) is LogPlace.OK
    assert 7 in view.checks()
    # The node's block 7 is another block: the log came from a branch that lost.
    assert view.observe(header(11), {7: header(7), 10: header(10)}) is HeadAnswer.DIVERGED


def test_a_confirmed_claim_is_pinned_and_no_longer_asked_for() -> None:
    view = following(5, 10)
    view.place_log(7, h(7))
    assert view.observe(header(11), {7: header(7), 10: header(10)}) is HeadAnswer.NEW
    assert 7 not in view.checks()
    assert view.pinned(7) == h(7)


def test_a_claim_is_checked_even_where_a_header_above_pinned_that_height() -> None:
    view = following(5, 10)
    assert view.place_log(7, h(7, "b")) is LogPlace.OK  # delivered from a block the chain does not have
    # Block 8's parent link pins block 7 in the same batch: the claim is still contradicted.
    assert view.observe(header(11), {7: header(7), 8: header(8), 10: header(10)}) is HeadAnswer.DIVERGED
    # And the chains part below it, though every pinned block kept its hash: block 7 is read again.
    fork = view.locate_fork({n: header(n) for n in view.fork_queries()})
    assert isinstance(fork, Fork) and fork.number < 7 and not fork.replaced, fork


# --- one answer with two blocks at one height (both sides of a reorg) ---


def branch_b(number: int) -> Header:
    """The chain after a reorg that replaced blocks 11 and 12 of branch "a" (parted at block 10)."""
    return header(number) if number <= 10 else header(number, "b", "a" if number == 11 else "b")


def log_of(number: int, branch: str, index: int = 0) -> dict[str, object]:
    return {
        "address": NEXUS,
        "topics": ["0x" + "11" * 32],
        "data": "0x",
        "blockNumber": hex(number),
        "blockHash": h(number, branch),
        "logIndex": hex(index),
        "transactionHash": "0x" + "22" * 32,
    }


@pytest.mark.parametrize(
    ("answer", "delivered"),
    [
        # The replaced blocks' logs first, as a node's filter lists them: the
        # first hash seen at a height must not settle it.
        (
            [log_of(11, "a"), log_of(12, "a"), log_of(11, "b"), log_of(11, "b", 1), log_of(12, "b")],
            [(11, "b", 0), (11, "b", 1), (12, "b", 0)],
        ),
        (
            [log_of(11, "b"), log_of(12, "b"), log_of(11, "a"), log_of(12, "a")],
            [(11, "b", 0), (12, "b", 0)],
        ),
        # Only one height has rivals; the block above it, from one branch only, waits with it.
        (
            [log_of(11, "a"), log_of(11, "b"), log_of(12, "b"), log_of(13, "b")],
            [(11, "b", 0), (12, "b", 0), (13, "b", 0)],
        ),
    ],
)
def test_a_height_reported_with_two_blocks_in_one_answer_waits_for_its_header(
    answer: list[dict[str, object]],
    delivered: list[tuple[int, str, int]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ogpu.events")
    view = following(9, 10)
    ready, held = triage(view, answer, asked=False)
    assert ready == []
    got: list[dict[str, object]] = []
    for _ in range(4):  # ticks on the new branch, until the headers pin every height
        view.observe(branch_b(14), {n: branch_b(n) for n in view.checks()})
        ready, held = triage(view, held, asked=False)
        got += ready
    assert held == []
    assert [(int(str(r["blockNumber"]), 16), r["blockHash"], int(str(r["logIndex"]), 16)) for r in got] == [
        (n, h(n, b), i) for n, b, i in delivered
    ]
    orphans = [r for r in caplog.records if "orphan of a reorg" in r.getMessage()]
    assert len(orphans) == len(answer) - len(delivered)


# --- finding the fork ---


def test_a_head_that_jumped_is_followed_by_headers_that_fill_the_gap() -> None:
    view = following(8, 9, 10)
    assert view.observe(header(15), {10: header(10)}) is HeadAnswer.NEW
    assert view.checks() == [11, 12, 13, 14, 15]
    # The filled gap links to block 10: a branch that parted at 12 is seen right away.
    fork_at_12 = {11: header(11), 12: header(12, "b"), 13: header(13, "b", "b"), 14: header(14, "b", "b")}
    assert view.observe(header(15, "b", "b"), {**fork_at_12, 15: header(15, "b", "b")}) is HeadAnswer.DIVERGED


def test_fork_is_the_highest_pinned_block_that_kept_its_hash() -> None:
    view = following(*range(1, 11))
    headers = {
        n: (header(n) if n <= 7 else header(n, "b", "b" if n > 8 else "a")) for n in view.fork_queries()
    }
    fork = view.locate_fork(headers)
    assert fork == Fork(7)
    view.rebase(fork, headers, header(10, "b", "b"))
    assert view.head == 10
    assert view.pinned(8) == h(8, "b") and view.pinned(7) == h(7)


def test_only_missing_blocks_above_a_match_is_a_lagging_backend() -> None:
    view = following(*range(1, 11))
    headers = {n: (header(n) if n <= 8 else None) for n in view.fork_queries()}
    assert view.locate_fork(headers) == LaggingBackend(8)


@pytest.mark.parametrize(("genesis_branch", "fork"), [("a", 0), ("b", -1)])
def test_no_common_block_is_a_replaced_chain(genesis_branch: str, fork: int) -> None:
    view = following(*range(1, 21))
    # A development node restarted: a new chain three blocks long, from the same genesis or not.
    new_chain = {
        0: header(0, genesis_branch),
        1: header(1, "c", genesis_branch),
        2: header(2, "c"),
        3: header(3, "c"),
    }
    headers = {n: new_chain.get(n) for n in view.fork_queries()}
    found = view.locate_fork(headers)
    assert found == Fork(fork, replaced=True)
    view.rebase(found, headers, header(3, "c"))
    assert view.head == 3
    assert view.checks() == [3]


@pytest.mark.parametrize(
    ("below", "pinned_down_to"),
    [
        ({n: header(n) for n in range(80, 100)}, 79),  # each linked to the one above: all pinned, parents too
        # Moved while asked: 96 pinned its parent 95, whose header is another block; nothing lower.
        ({**{n: header(n) for n in range(80, 100)}, 95: header(95, "b")}, 95),
        ({**{n: header(n) for n in range(80, 100)}, 97: None}, 97),  # a block the node did not give: stop
    ],
)
def test_blocks_below_the_first_head_are_pinned_while_they_link_down(
    below: dict[int, Header | None], pinned_down_to: int
) -> None:
    view = ChainView()
    view.observe(header(100), {})
    view.pin_below(below)
    assert min(n for n in range(1, 101) if view.pinned(n) is not None) == pinned_down_to
    assert all(view.pinned(n) == h(n) for n in range(pinned_down_to, 101))


def test_a_reorg_below_the_first_head_is_found_once_blocks_below_it_are_pinned() -> None:
    # A stream started at head 100 that pinned only its head's parent took a
    # three-block reorg right after the start for a replaced chain and read
    # everything again from block 1.
    view = ChainView()
    view.observe(header(100), {})
    view.pin_below({n: header(n) for n in range(84, 100)})
    new_chain = {n: (header(n) if n <= 97 else header(n, "b", "b" if n > 98 else "a")) for n in range(0, 102)}
    headers = {n: new_chain[n] for n in view.fork_queries()}
    assert view.locate_fork(headers) == Fork(97)


def test_the_window_is_bounded() -> None:
    view = following(*range(1, 5 * WINDOW))
    assert len(view.fork_queries()) <= 2 * WINDOW + 2


def test_header_answers_are_parsed_strictly() -> None:
    assert parse_header(None) is None
    assert parse_header({"number": "0x2", "hash": h(2), "parentHash": h(1)}) == header(2)
    for bad in (
        {},
        {"number": "zz", "hash": h(2), "parentHash": h(1)},
        {"number": "0x2", "hash": "0x12"},
        "0x2",
    ):
        with pytest.raises(RpcProtocolError):
            parse_header(bad)


# --- screening answers ---


def raw(number: int, index: int = 0, address: str = NEXUS) -> dict[str, object]:
    return {
        "address": address,
        "topics": ["0x" + "11" * 32],
        "data": "0x",
        "blockNumber": hex(number),
        "blockHash": h(number),
        "logIndex": hex(index),
        "transactionHash": "0x" + "22" * 32,
    }


@pytest.mark.parametrize("answer", [None, {}, "0x", 0])
def test_a_filter_answer_that_is_not_a_list_means_the_filter_is_lost(answer: object) -> None:
    assert filter_changes(answer, NEXUS) is None


def test_screening_drops_other_contracts_and_out_of_range_logs_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ogpu.events")
    foreign = raw(5, 1, "0x" + "ab" * 20)
    assert filter_changes([raw(5), foreign], NEXUS) == [raw(5)]
    assert logs_in_range([raw(4), raw(5), raw(9), raw(2**64)], NEXUS, 5, 8) == [raw(5)]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("other contracts" in m for m in messages)
    assert any("outside that range" in m for m in messages)


def test_a_block_a_log_reported_above_lagging_heads_is_believed_when_shown_by_number() -> None:
    view = following(9, 10)
    assert view.place_log(11, h(11)) is LogPlace.AHEAD
    assert 11 in view.checks()
    # Every head answer lags (10), but block 11 asked for by number is there, on block 10.
    assert view.observe(header(10), {10: header(10), 11: header(11)}) is HeadAnswer.NEW
    assert view.head == 11
    assert view.place_log(11, h(11)) is LogPlace.OK


def test_an_expected_block_is_believed_only_on_top_of_the_pinned_head() -> None:
    view = following(9, 10)
    view.ask_by_number(11)
    assert 11 in view.checks()
    assert view.observe(header(10), {10: header(10), 11: header(11, "b", "b")}) is not HeadAnswer.NEW
    view.ask_by_number(11)
    assert view.observe(header(10), {10: header(10), 11: header(11)}) is HeadAnswer.NEW
    assert view.head == 11


def test_a_far_tip_that_never_shows_again_is_given_up() -> None:
    view = following(*range(1, 13))
    made_up = Header(1012, h(1012, "z"), h(1011, "z"))
    view.observe(made_up, {12: header(12)})
    # The same made-up block shown again, by a node whose head got there: believed.
    assert view.observe(made_up, {12: header(12), 1012: made_up}) in (HeadAnswer.NEW, HeadAnswer.SAME)
    assert view.head == 1012
    # Then only the real chain, below it, never showing it again.
    verdicts = []
    for _ in range(6):
        headers = {n: (header(n) if n <= 12 else None) for n in view.fork_queries()}
        seen = view.observe(header(12), {n: headers.get(n) for n in view.checks()})
        if seen is HeadAnswer.DIVERGED:
            fork = view.locate_fork(headers)
            verdicts.append(fork)
            if isinstance(fork, Fork):
                view.rebase(fork, headers, header(12))
                break
    assert verdicts and isinstance(verdicts[-1], Fork) and verdicts[-1].number == 12
    assert view.head == 12
