"""When a node filter may be trusted to say a block has no logs. No I/O here.

A filter reports the logs of blocks mined after the node created it, and
nothing says which block that was: a head read beside ``eth_newFilter`` may
lag it (a backend behind, a block mined in between). So a new filter is *in
doubt*: every new block is also read by ``eth_getLogs`` (the *cover*), and
the live lane's cursor moves only over what those reads covered. The first
log the filter itself reports, once a header shows that log's block with
the log's hash, proves the filter was created before that block; once the
cover has read every block below it, the doubt ends and the filter alone
carries the stream. A reorg brings the doubt back: the blocks above the
fork are read again.

``LiveFilter`` does the I/O and asks this object what each answer means;
``tests/unit/test_filter_doubt.py`` drives it with tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = ["FilterDoubt"]


class FilterDoubt:
    """The doubt about one filter: what the cover has read, and what proves the filter."""

    def __init__(self) -> None:
        # Every block up to this one was read by eth_getLogs and delivered,
        # none above it; None: no doubt (proven, or no filter).
        self.covered: int | None = None
        # The lowest block of a log this filter reported, shown on the chain by a header.
        self.proven_from: int | None = None
        # Blocks of logs the filter reported above the covered ones, with their
        # hashes, until a header shows whether they are on the chain.
        self._candidates: dict[int, str] = {}

    @property
    def active(self) -> bool:
        return self.covered is not None

    def begin(self, cursor: int) -> None:
        """A filter was installed; everything up to ``cursor`` was read by eth_getLogs."""
        self.covered = cursor
        self.proven_from = None
        self._candidates = {}

    def clear(self) -> None:
        """No filter any more (its lane emptied)."""
        self.covered = self.proven_from = None
        self._candidates = {}

    def rewound(self, fork: int) -> None:
        """A reorg parted the chains after ``fork``: the blocks above it are read again."""
        self.covered = fork if self.covered is None else min(self.covered, fork)
        self.proven_from = None
        self._candidates = {}

    def cover_range(self, safe_end: int | None) -> tuple[int, int] | None:
        """The blocks the cover reads next: after the covered ones, up to the chain's safe end.

        Not up to a head only one answer showed: a backend ahead shows a
        header the one answering eth_getLogs lacks, and an empty answer for
        that block would be taken as proof (see ``ChainView.safe_end``).
        """
        if self.covered is None or safe_end is None:
            return None
        return None if safe_end <= self.covered else (self.covered + 1, safe_end)

    def read(self, first: int, last: int) -> None:
        """The cover (or a refill) read ``first..last``: covered if it joins what was covered."""
        if self.covered is not None and first <= self.covered + 1:
            self.covered = max(self.covered, last)

    def note(
        self,
        reported: Iterable[tuple[int, str]],
        pinned: Callable[[int], str | None],
        beyond: int | None,
    ) -> None:
        """Take the (block, hash) of the logs a filter answer carried; headers decide which prove.

        A stale or made-up log (a proxy's, a replaced block's) proves nothing:
        only one whose block a header shows with its hash. Logs at or below
        the covered blocks owe nothing; logs above ``beyond`` (no head has
        come near them) are the triage's to drop.
        """
        if self.covered is None:
            return
        for number, block_hash in reported:
            if number > self.covered and (beyond is None or number <= beyond):
                self._candidates.setdefault(number, block_hash.lower())
        for number, block_hash in sorted(self._candidates.items()):
            shown = pinned(number)
            if shown is None:
                continue
            del self._candidates[number]
            if shown == block_hash and (self.proven_from is None or number < self.proven_from):
                self.proven_from = number

    def settle(self) -> bool:
        """End the doubt if the filter is proven and the cover reached the block below the proof."""
        if self.covered is not None and self.proven_from is not None and self.covered >= self.proven_from - 1:
            self.covered = None
            return True
        return False

    def deliverable(self, block: int) -> bool:
        """Whether a filter log of ``block`` may be delivered now (no unread block below it)."""
        return self.covered is None or block <= self.covered
