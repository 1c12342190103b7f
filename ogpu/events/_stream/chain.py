"""What the stream believes the chain is: recent blocks pinned by hash. No I/O here.

Block numbers say where a block sits, not which block it is: a reorg, a
load balancer with backends on different forks, or a development node
restarted on the same port all answer "block 7" with another block. So the
stream pins the blocks it relies on by hash, and every answer is checked
against them before it moves anything:

* each tick asks the node for the latest header and, in the same batch, for
  the header at the number of the last head it believed (the anchor). If the
  anchor still has its hash, every block below it does too: hashes chain.
* logs report the hash of their block; those hashes are *claims*, checked
  against the node's header at that number in a later tick's batch.
* a head far above the last believed one is held until a later answer shows
  the same block at that height (one glitched answer moves nothing).
* when a pinned hash changes, the hub reads the headers of every pinned
  number in one batch and :meth:`ChainView.locate_fork` says where the chains
  part: the highest pinned block that still has its hash.

The hub does the I/O; this module only decides, so the decisions are tested
with tables of headers (``tests/unit/test_chain_view.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from ogpu.events._net.headers import Header

__all__ = [
    "WINDOW",
    "ChainView",
    "Fork",
    "HeadAnswer",
    "LaggingBackend",
    "LogPlace",
]

# Blocks kept by hash, counted back from the believed head; the view fills
# gaps (a head that jumped several blocks) so that every block in it is pinned.
# A reorg deeper than this finds no common block (see locate_fork).
WINDOW = 64
# Headers asked for per tick to fill the window, beside the anchor.
_FILL_PER_TICK = 16
# A chain replaced below the window is read again from its first block when it
# is this short (a development node); a longer one from the window's bottom.
_SHORT_CHAIN = 10_000
# A head this far above the believed one is held until the chain confirms it.
SPIKE = 64
# Ticks a believed head may go unseen, the node answering below it, before it is given up.
_HEAD_MISSING_TICKS = 5
# Unverified log hashes checked per tick, lowest first: a bound on the batch.
_CLAIMS_PER_TICK = 16


class HeadAnswer(enum.Enum):
    """What one tick's head answer means."""

    NEW = "new"  # consistent, and the believed head moved up
    SAME = "same"  # consistent, nothing new
    BEHIND = "behind"  # consistent but lower: a lagging backend; nothing moves
    HELD = "held"  # far above the believed head: not believed until confirmed
    DIVERGED = "diverged"  # a pinned block has another hash now: find the fork


class LogPlace(enum.Enum):
    """Where a log's block stands against the pinned chain."""

    OK = "ok"  # at or below the believed head, and no pinned hash says otherwise
    AHEAD = "ahead"  # above the believed head, close enough to wait for it
    BEYOND = "beyond"  # far above every head seen: not believed
    STALE = "stale"  # its block number is pinned to another hash
    # One answer reported two blocks at this height (both sides of a reorg):
    # held until a header pins which one the chain has.
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class Fork:
    """Where the node's chain parts from the pinned one.

    ``number`` is the last block both share (-1: not even the genesis block);
    blocks above it are to be read again. ``replaced``: no pinned block
    survived, as after a development node restarted on the same port.
    """

    number: int
    replaced: bool = False


@dataclass(frozen=True, slots=True)
class LaggingBackend:
    """No fork: every pinned block up to ``number`` is there, the answering backend only lacks those above."""

    number: int


class ChainView:
    """Recent blocks by number and hash, the believed head, and the checks still owed."""

    def __init__(self) -> None:
        self._pinned: dict[int, str] = {}  # verified by a header, or as the parent of one
        self._shown_by_header: set[int] = set()  # pinned from a header of their own
        self._claims: dict[int, str] = {}  # reported by logs, not yet verified
        # Blocks above the believed head that a log reported (with its hash)
        # or the stream waits for (None): asked for by number until shown.
        self._ahead: dict[int, str | None] = {}
        # The believed head (see ``head``).
        self._head_block: Header | None = None
        # The highest head a later answer showed again with the same hash: a
        # head from a backend on another fork, or a glitch, never gets here.
        self.head_shown_twice: int | None = None
        self.genesis: str | None = None
        self.chain_id: int | None = None
        # A head far above the believed one (HeadAnswer.HELD), believed once shown again.
        self._held_head: Header | None = None
        # Ticks in a row whose answers were below the head and did not show it.
        self._head_missing = 0
        # Pinned heights a read contradicted: their headers are asked for next tick.
        self._recheck: set[int] = set()

    @property
    def head(self) -> int | None:
        """The highest block the stream believes the chain has (checked answers only; ``None`` before any)."""
        return None if self._head_block is None else self._head_block.number

    @property
    def safe_end(self) -> int | None:
        """The highest block a lane may read through: the one head notion lanes and watchers start from.

        The believed head, or lower, the highest head the chain has shown
        twice: a head from a backend on another fork, or one the backend
        answering ``eth_getLogs`` lacks, is never read up to. Before any head
        has been shown twice, the believed head (the first one was asked for
        twice before it was believed).
        """
        head = self.head
        if head is None or self.head_shown_twice is None:
            return head
        return min(head, self.head_shown_twice)

    def pinned(self, number: int) -> str | None:
        return self._pinned.get(number)

    def pins(self) -> dict[int, str]:
        """Every block hash pinned, by height (a copy)."""
        return dict(self._pinned)

    def holds(self, number: int, header: Header | None) -> bool:
        """Whether ``header``, asked for after a read above ``number``, is the block pinned there.

        A block below a read that has another hash now means the chain moved
        under the read; that height is asked for again next tick, which finds
        where the chains part. No header, or no pin, says nothing either way.
        """
        pinned = self._pinned.get(number)
        if header is None or pinned is None or header.hash == pinned:
            return True
        self.recheck(number)
        return False

    def recheck(self, number: int) -> None:
        """Ask for block ``number``'s header next tick: a read suggests its pinned hash changed."""
        if number in self._pinned:
            self._recheck.add(number)

    def vouches(self, number: int, block_hash: str) -> bool:
        """Whether a header showed block ``number`` with ``block_hash`` (or it lies below the window,
        where no header will pin it any more and its claim is all there is)."""
        if not self._in_window(number):
            return True
        return self._pinned.get(number) == block_hash.lower()

    def checks(self) -> list[int]:
        """Block numbers whose headers the next tick asks for beside the latest one."""
        wanted: set[int] = set()
        if self._head_block is not None:
            wanted.add(self._head_block.number)
        if self.genesis is None:
            wanted.add(0)
        if self._held_head is not None:
            wanted.add(self._held_head.number)
        wanted.update(self._ahead)
        wanted.update(self._recheck)
        self._recheck.clear()
        wanted.update(sorted(self._claims)[:_CLAIMS_PER_TICK])
        wanted.update(self._gaps())
        return sorted(wanted)

    def _gaps(self) -> list[int]:
        """Numbers to ask for so the window has a hash at every height.

        A header whose hash is pinned also pins its parent's, so asking for
        the pinned block above a gap and then every number down through it
        fills the gap in one batch, each header checked against the one above.
        """
        if self._head_block is None:
            return []
        bottom = max(1, self._head_block.number - WINDOW + 1)
        wanted: list[int] = []
        number = self._head_block.number
        while number > bottom and len(wanted) < _FILL_PER_TICK:
            if number - 1 not in self._shown_by_header:
                if not wanted or wanted[-1] != number:
                    wanted.append(number)
                wanted.append(number - 1)
            elif wanted and wanted[-1] == number:
                break  # the gap above is closed: the parent was shown by a header
            number -= 1
        return wanted

    def observe(self, latest: Header, checked: Mapping[int, Header | None]) -> HeadAnswer:
        """Take one tick's answers: the latest header and the headers asked for by :meth:`checks`."""
        anchor = self._head_block
        # A block a log reported above the head, shown by its number: the
        # head answers may lag (a backend behind), that block is there.
        shown: Header | None = None
        # From the top down: each header pins its parent's hash, which the
        # next one down is checked against.
        for number, header in sorted(checked.items(), reverse=True):
            if header is None:
                continue  # not on the answering backend (yet): judged below with the latest head
            if number == 0 and self.genesis is None:
                self.genesis = self._pinned[0] = header.hash
                continue
            if number in self._ahead and (shown is None or number > shown.number):
                expected = self._ahead[number]
                if expected == header.hash or (
                    expected is None and self._pinned.get(number - 1) == header.parent_hash
                ):
                    shown = header
            if self._pinned.get(number, self._claims.get(number)) is None:
                continue  # no link to the pinned chain (a gap the answer above did not fill)
            if not self._agrees(header):
                return HeadAnswer.DIVERGED
            self._verify(header)
        if not self._agrees(latest):
            return HeadAnswer.DIVERGED
        candidate, self._held_head = self._held_head, None
        if candidate is not None:
            # Confirmed by a later answer of the same block at that height,
            # from a node whose head has got there too.
            confirmed = checked.get(candidate.number)
            if (
                confirmed is not None
                and confirmed.hash == candidate.hash
                and latest.number >= candidate.number
            ):
                self._believe(candidate)
                anchor = self._head_block
        if anchor is None:
            self._believe(latest)
            return HeadAnswer.NEW
        anchor_answer = checked.get(anchor.number)
        if anchor_answer is not None and (anchor.number - 1 in self._shown_by_header or anchor.number == 0):
            # Shown twice, and on a parent some header showed too: a head that
            # a backend on another chain made up never links down like that.
            self.head_shown_twice = max(self.head_shown_twice or 0, anchor.number)
        if shown is not None and shown.number > max(anchor.number, latest.number) and self._agrees(shown):
            self._believe(shown)
            return HeadAnswer.NEW
        if anchor_answer is not None:
            self._head_missing = 0
        if latest.number <= anchor.number:
            if anchor_answer is not None:
                return HeadAnswer.SAME if latest.number == anchor.number else HeadAnswer.BEHIND
            if self._pinned.get(latest.number) == latest.hash:
                # A backend behind us catches up; a tip that a backend far ahead
                # made up never shows again: after a few ticks, it is given up.
                self._head_missing += 1
                return HeadAnswer.BEHIND if self._head_missing < _HEAD_MISSING_TICKS else HeadAnswer.DIVERGED
            # A lower head and no trace of the anchor: a backend behind us, or a
            # chain that restarted below it. Only the headers can tell.
            return HeadAnswer.DIVERGED
        if anchor.number in checked and anchor_answer is None:
            return HeadAnswer.DIVERGED  # a higher head from a chain that lacks our anchor
        if latest.number - anchor.number > SPIKE:
            self._held_head = latest
            return HeadAnswer.HELD
        self._believe(latest)
        return HeadAnswer.NEW

    def pin_below(self, headers: Mapping[int, Header | None]) -> None:
        """Pin blocks below the believed head from one batch of their headers, top down.

        Each header counts only where the pin above it named it by its parent
        hash; the first that does not (the chain moved while they were asked)
        ends it. A stream that has just started then knows blocks below its
        first head, and a reorg below that head is not taken for a replaced chain.
        """
        for number, header in sorted(headers.items(), reverse=True):
            if header is None or number <= 0 or self._pinned.get(number) != header.hash:
                return
            self._verify(header)

    def place_log(self, number: int, block_hash: str) -> LogPlace:
        """Where a log's block stands; an OK log's hash becomes a claim to verify later."""
        head = self.head
        if head is None or number > head:
            if head is not None and number > head + SPIKE:
                return LogPlace.BEYOND
            if head is not None:
                self._ahead[number] = block_hash.lower()
            return LogPlace.AHEAD
        block_hash = block_hash.lower()
        known = self._pinned.get(number, self._claims.get(number))
        if known is None:
            if self._in_window(number):
                self._claims[number] = block_hash
            return LogPlace.OK
        return LogPlace.OK if known == block_hash else LogPlace.STALE

    def place_contested_log(self, number: int, block_hash: str) -> LogPlace:
        """Where a log stands whose answer also reported another block at its height.

        The first hash seen must not become the claim there: a filter answer
        after a reorg carries the replaced blocks' logs beside the new ones,
        in any order, and the new ones would be dropped as stale. Only a
        header decides: until one pins the height, the log waits (WAIT).
        """
        head = self.head
        if head is not None and number > head + SPIKE:
            return LogPlace.BEYOND
        known = self._pinned.get(number)
        if known is not None:
            return LogPlace.OK if known == block_hash.lower() else LogPlace.STALE
        if head is not None and number <= head and not self._in_window(number):
            # Below the window no header will pin it any more: the claim, checked
            # against the header at that height, is all there is (never held forever).
            return self.place_log(number, block_hash)
        if head is not None and number > head:
            # Asked for by number; at or below the head, the window fill pins it.
            self._ahead.setdefault(number, None)
        return LogPlace.WAIT

    def ask_by_number(self, number: int) -> None:
        """Ask for block ``number`` by number in later ticks, and believe it once it sits on the head.

        Head answers from a backend that lags can stay below a block the
        stream knows must exist (a filter was created after it); this finds
        it without them.
        """
        head = self.head
        if head is not None and head < number <= head + SPIKE:
            self._ahead.setdefault(number, None)

    def above(self, number: int) -> dict[int, str]:
        """The hashes the view holds (pinned or claimed) for heights above ``number``."""
        held = {n: h for n, h in self._claims.items() if n > number}
        held.update((n, h) for n, h in self._pinned.items() if n > number)
        return held

    def fork_queries(self) -> list[int]:
        """Every number the view pins or has claims for, and the genesis block."""
        return sorted({0, *self._pinned, *self._claims})

    def locate_fork(
        self, headers: Mapping[int, Header | None], delivered: Mapping[int, Collection[str]] | None = None
    ) -> Fork | LaggingBackend:
        """Where the node's chain (``headers``, by number, from one batch) parts from the pinned one.

        ``delivered``: block hashes of logs the stream delivered, by height.
        Below the pins (a stream started lately keeps few) they still say
        which blocks it followed: a header that is one of them is a block in
        common, so a deep reorg is not taken for a replaced chain. No fork at
        all, only blocks missing above the pinned ones: ``LaggingBackend``.
        """
        seen = delivered or {}
        # A log's claim the node's header contradicts, though blocks above it
        # kept their hashes (see _agrees): that log came from a block the chain
        # does not have there, so the chains part below it, whatever matches above.
        wrong = [
            n
            for n, header in headers.items()
            if header is not None and n > 0 and self._claims.get(n) not in (None, header.hash)
        ]
        ceiling = min(wrong, default=None)
        differed = ceiling is not None
        for number in sorted(headers, reverse=True):
            header = headers[number]
            if header is None or number == 0 or (ceiling is not None and number >= ceiling):
                continue
            ours = self._pinned.get(number, self._claims.get(number))
            if ours is None:
                followed = seen.get(number)
                if not followed:
                    continue
                if header.hash not in followed:
                    differed = True
                    continue
                if differed:
                    return Fork(number)
                continue  # a block followed, unchanged: what lies above decides
            if header.hash != ours:
                differed = True
            elif number in self._pinned:
                if differed:
                    return Fork(number)
                # Only missing above: a backend behind, which catches up; but a
                # head that stays missing tick after tick was made up (a backend
                # on another chain), and is given up.
                self._head_missing += 1
                if self._head_missing < _HEAD_MISSING_TICKS:
                    return LaggingBackend(number)
                return Fork(number)
        genesis = headers.get(0)
        same_genesis = genesis is not None and self.genesis in (None, genesis.hash)
        if not same_genesis:
            return Fork(-1, replaced=True)
        lowest = min((n for n in self._pinned if n > 0), default=0)
        if lowest > _SHORT_CHAIN:
            # A long chain that parted below every block kept: what lies between
            # its first block and the window cannot be told apart any more.
            return Fork(lowest - 1, replaced=True)
        return Fork(0, replaced=True)

    def rebase(self, fork: Fork, headers: Mapping[int, Header | None], latest: Header) -> None:
        """Forget what lies above the fork and pin what the node's chain holds instead."""
        if fork.replaced:
            self._pinned.clear()
            self._claims.clear()
            genesis = headers.get(0)
            self.genesis = genesis.hash if genesis is not None else None
        for table in (self._pinned, self._claims):
            for number in [n for n in table if n > fork.number]:
                del table[number]
        self._shown_by_header &= set(self._pinned)
        self._held_head = None
        self._ahead.clear()
        self._head_missing = 0
        self._head_block = None
        if self.head_shown_twice is not None:
            self.head_shown_twice = min(self.head_shown_twice, fork.number) if fork.number >= 0 else None
        found = [h for h in headers.values() if h is not None and h.number <= latest.number]
        for header in found:
            self._verify(header)
        # The headers asked for by number vouch for each other; the latest
        # answer, from another request, is believed beside them only if it is
        # one of them or sits right on top of the highest: its parent's hash
        # would otherwise be pinned unchecked. If not, a later tick confirms it.
        best = max(found, key=lambda h: h.number, default=None)
        if best is None:
            self._believe(latest)
            return
        self._believe(best)
        if latest == best or (latest.number == best.number + 1 and latest.parent_hash == best.hash):
            self._believe(latest)
        elif latest.number > best.number:
            self._held_head = latest

    # --- internals ---

    def _agrees(self, header: Header) -> bool:
        # The claim is checked even where a header above pinned the height by
        # its parent link: a log already delivered from another block there
        # left the chain, and only a fork read finds what replaced it.
        for known in (self._pinned.get(header.number), self._claims.get(header.number)):
            if known is not None and known != header.hash:
                return False
        parent = self._pinned.get(header.number - 1)
        return parent is None or parent == header.parent_hash

    def _verify(self, header: Header) -> None:
        self._claims.pop(header.number, None)
        if self._in_window(header.number) or header.number == 0:
            self._pinned[header.number] = header.hash
            self._shown_by_header.add(header.number)
            if header.number > 0 and self._in_window(header.number - 1):
                self._pinned.setdefault(header.number - 1, header.parent_hash)

    def _believe(self, header: Header) -> None:
        if self._head_block is not None and header.number < self._head_block.number:
            return
        self._head_block = header
        self._verify(header)
        for number in [n for n in self._ahead if n <= header.number]:
            del self._ahead[number]
        horizon = header.number - WINDOW
        for number in [n for n in self._claims if n < horizon]:
            del self._claims[number]
        # Pins are kept by count, not by distance from the head: after a jump
        # (a backend far ahead, believed once confirmed), the blocks from
        # before it are still there to find the fork if the jump is undone.
        if len(self._pinned) > 2 * WINDOW:
            for number in sorted(n for n in self._pinned if n > 0)[: len(self._pinned) - 2 * WINDOW]:
                del self._pinned[number]
                self._shown_by_header.discard(number)

    def _in_window(self, number: int) -> bool:
        return self._head_block is None or number > self._head_block.number - WINDOW
