"""Routing one ordered stream of raw logs to the watchers that want them.

A lane is the delivery side of the shared stream for one confirmation depth:
it keeps the cursor (the last block whose logs it has fully delivered),
remembers recent log identities so no seam can deliver a log twice, and
routes each log through a dict keyed by (event, scoping field, address), so
delivering costs the same for ten watchers or ten thousand. A log is decoded
at most once per lane, and only when some watcher wants it.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

from ogpu._errors import LogDecodeError
from ogpu.events._codec.abi import EVENTS, RawLog
from ogpu.events._net.answers import chain_order, well_formed
from ogpu.events._stream.screen import WatcherMatch

__all__ = ["REDELIVERY_BLOCKS", "CursorRuleError", "Lane", "RecentlyYielded", "Subscription"]

log = logging.getLogger("ogpu.events")

# How far below its newest block a lane may deliver a log again: a refill
# after a lost filter starts a margin below the cursor, and a reorg's re-read
# at the fork. Log identities are kept this far back, by the lane (behind its
# cursor) and by each watcher (behind the newest event it yielded).
REDELIVERY_BLOCKS = 256
# The newest identities kept whatever the distance (see Lane.advance).
_KEEP_LOGS = 4_096
# Which Nexus event a log is (the lane routes every one to whoever wants it).
_EVERY_EVENT = WatcherMatch(EVENTS.values(), None, None)
_FIRST_BACKLOG_WARNING = 1_000

# Off for users (a breach is logged and the cursor stays); the test suite turns
# it on, so a path that moves a cursor over an unread block fails at once.
CHECK_CURSOR_RULE = os.environ.get("OGPU_CHECK_CURSOR_RULE", "") == "1"


class CursorRuleError(AssertionError):
    """A cursor was about to pass a block no recorded read covered (a bug in this library)."""


class Subscription:
    """One watcher's place on a lane: what it wants and its backlog of events."""

    __slots__ = (
        "_error",
        "_queue",
        "_waiter",
        "_warn_at",
        "confirmations",
        "event_names",
        "field",
        "fork_below",
        "from_block",
        "head_at_join",
        "history_end",
        "joined_at",
        "label",
        "live_from",
        "poll_interval",
        "resumed",
        "scope",
    )

    def __init__(
        self,
        event_names: tuple[str, ...],
        field: str | None,
        scope: str | None,
        *,
        from_block: int | None,
        poll_interval: float,
        confirmations: int,
        label: str,
    ) -> None:
        self.event_names = event_names
        self.field = field
        self.scope = scope
        self.from_block = from_block
        self.poll_interval = poll_interval
        self.confirmations = confirmations
        self.label = label
        # Where the lane stood when this watcher joined it (set when the lane
        # is ready): blocks from_block..joined_at come from history. Not a
        # cursor: the lane's is the only one.
        self.joined_at: int | None = None
        # While its history is read: the last block history still owes. A
        # reorg below it shortens it to the fork (the lane delivers the rest).
        self.history_end: int | None = None
        # The lowest fork a reorg found while this watcher ran: above it, the
        # blocks are not the ones a resume position (after=) was taken on.
        self.fork_below: int | None = None
        self.resumed = False  # started with after=
        # The lowest block whose live logs this watcher takes (set when it
        # joins; a reorg may lower it): below it, history delivers.
        self.live_from = 1 << 256
        # The stream's safe end when this watcher joined (ChainView.safe_end):
        # "mined after it started" is measured from there, not from a later
        # tick's head. Not a cursor.
        self.head_at_join: int | None = None
        self._queue: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._warn_at = _FIRST_BACKLOG_WARNING

    def push(self, event: Any) -> None:
        self._queue.append(event)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if len(self._queue) >= self._warn_at:
            log.warning(
                "%s is not keeping up: %d events waiting (kept, not dropped)",
                self.label,
                len(self._queue),
            )
            self._warn_at *= 2

    def fail(self, exc: BaseException) -> None:
        """Make ``next`` raise ``exc`` once the events already queued are taken."""
        self._error = exc
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self) -> Any:
        while not self._queue:
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        event = self._queue.popleft()
        if len(self._queue) < self._warn_at // 4:
            self._warn_at = max(_FIRST_BACKLOG_WARNING, self._warn_at // 2)
        return event


class Lane:
    """Delivers logs at one confirmation depth to its subscriptions."""

    def __init__(self, confirmations: int) -> None:
        self.confirmations = confirmations
        self.cursor: int | None = None
        # The highest block up to which reads recorded by ``covered`` reach,
        # contiguously from the cursor: the cursor never moves beyond it.
        self.read_through = -1
        # The hash of block ``read_through`` as the read that reached it saw
        # it, when that read showed it: the next read must stand on it.
        self._through_hash: str | None = None
        # The block of the newest log delivered: above the cursor while a
        # filter's logs run ahead of what reads have covered. Not a cursor:
        # a watcher joining now reads history up to it (see _attach).
        self.newest_log_block = -1
        self.ready = asyncio.Event()
        self._scoped: dict[tuple[str, str, str], set[Subscription]] = {}
        self._fields: dict[str, Counter[str]] = {}
        self._unscoped: dict[str, set[Subscription]] = {}
        # (block hash, log index) -> transaction hash of every log delivered
        # lately, and a heap by block number to forget them in any order.
        self._seen: dict[tuple[str, int], str] = {}
        self._seen_order: list[tuple[int, tuple[str, int]]] = []
        # block hash -> (block, {log index: transaction hash}) of logs watchers
        # of this lane got from history, for the reorg WARNING only. Grouped by
        # block: a catch-up puts every log it reads here, and a key per log
        # cost as much as decoding it.
        self._from_history: dict[str, tuple[int, dict[int, str]]] = {}
        # Delivered logs above a reorg's fork, delivered once more when read
        # again (still remembered, so a later reorg still names them).
        self._again: set[tuple[str, int]] = set()
        self._pending: list[Subscription] = []
        self._members: set[Subscription] = set()

    @property
    def size(self) -> int:
        return len(self._members)

    def subscriptions(self) -> list[Subscription]:
        return list(self._members)

    def add(self, sub: Subscription, head: int | None) -> None:
        self._members.add(sub)
        for name in sub.event_names:
            if sub.field is not None and sub.scope is not None:
                self._scoped.setdefault((name, sub.field, sub.scope), set()).add(sub)
                self._fields.setdefault(name, Counter())[sub.field] += 1
            else:
                self._unscoped.setdefault(name, set()).add(sub)
        if self.ready.is_set() and head is not None:
            self._attach(sub, head)
        else:
            self._pending.append(sub)

    def remove(self, sub: Subscription) -> bool:
        """Take ``sub`` off the lane; False if it was not on it."""
        if sub not in self._members:
            return False
        self._members.discard(sub)
        for name in sub.event_names:
            if sub.field is not None and sub.scope is not None:
                key = (name, sub.field, sub.scope)
                group = self._scoped.get(key)
                if group is not None and sub in group:
                    group.discard(sub)
                    if not group:
                        del self._scoped[key]
                    fields = self._fields[name]
                    fields[sub.field] -= 1
                    if fields[sub.field] <= 0:
                        del fields[sub.field]
                    if not fields:
                        del self._fields[name]
            else:
                unscoped = self._unscoped.get(name)
                if unscoped is not None:
                    unscoped.discard(sub)
                    if not unscoped:
                        del self._unscoped[name]
        if sub in self._pending:
            self._pending.remove(sub)
        return True

    def note_head(self, head: int) -> None:
        """Watchers still waiting for this lane, that joined before the stream knew any
        head, measure "mined after they started" from this one: the lane may start
        a poll or more later, at a higher head."""
        for sub in self._pending:
            if sub.from_block is None and sub.head_at_join is None:
                sub.head_at_join = head

    def start(self, cursor: int, head: int) -> None:
        """First position of a new lane; subscriptions waiting for it join here.

        A watcher that joined when the stream already knew a lower head
        starts from there: blocks mined while the lane was being set up are
        read, not skipped.
        """
        heads = [s.head_at_join for s in self._pending if s.from_block is None and s.head_at_join is not None]
        self.cursor = min([cursor, *heads])
        self.read_through = self.cursor
        self._through_hash = None
        for sub in self._pending:
            self._attach(sub, head)
        self._pending.clear()
        self.ready.set()

    def _attach(self, sub: Subscription, head: int) -> None:
        assert self.cursor is not None
        # Everything the lane has already delivered, it will not deliver
        # again, so a joining watcher reads blocks up to the newest of them
        # from history and takes live logs only above that.
        joined = max(self.cursor, self.newest_log_block)
        sub.joined_at = joined
        if sub.resumed and sub.fork_below is not None and sub.from_block is not None:
            # A reorg below its position came while it waited for this lane:
            # its history reads the new branch from the fork.
            sub.from_block = min(sub.from_block, max(0, sub.fork_below + 1))
        if sub.from_block is None:
            # "Mined after the watcher started": above the head known at joining.
            known = head if sub.head_at_join is None else min(head, sub.head_at_join)
            sub.live_from = max(known, joined) + 1
        else:
            sub.live_from = max(sub.from_block, joined + 1)

    def covered(self, first: int, last: int, last_hash: str | None = None) -> None:
        """Record a read that returned every log of ``first..last`` (checked by hash where it was delivered).

        The one rule every path obeys: the cursor passes a block only once
        a read that covers it was recorded here (see :meth:`advance`).
        ``last_hash``: block ``last`` as the read's headers showed it, which
        the next read must stand on (see :meth:`continues`).
        """
        if self.cursor is None or first > self.cursor + 1 or last <= self.read_through:
            return
        self.read_through = last
        self._through_hash = last_hash

    def continues(self, below: int, below_hash: str) -> bool:
        """Whether a read of the blocks above ``below`` stands on the block the lane's reads reached.

        The chain view pins a window of blocks, not every block a lane has
        read; the lane keeps the hash of the block its reads reached, so a
        read served by a chain that changed below it (a node restarted with
        another chain, another endpoint) is never stitched onto the old one.
        Where the lane knows no hash for ``below``, this says nothing.
        """
        return below != self.read_through or self._through_hash in (None, below_hash)

    def advance(self, block: int) -> None:
        """Record that every log up to ``block`` has been delivered."""
        if self.cursor is None or block <= self.cursor:
            return
        if block > self.read_through:
            note = (
                f"lane {self.confirmations}: cursor {self.cursor} would move to {block}, "
                f"but reads reach only {self.read_through}"
            )
            if CHECK_CURSOR_RULE:
                raise CursorRuleError(note)
            log.warning("%s; a block may be passed unread (please report this)", note)
            return
        self.cursor = block
        horizon = block - REDELIVERY_BLOCKS
        order = self._seen_order
        # The newest identities stay whatever the distance: a cursor that
        # jumped (a head believed, then undone by a reorg) must not make the
        # logs it comes back to look new.
        while len(order) > _KEEP_LOGS and order[0][0] < horizon:
            key = heapq.heappop(order)[1]
            self._seen.pop(key, None)
            self._again.discard(key)
        if self._from_history:
            self._from_history = {k: v for k, v in self._from_history.items() if v[0] >= horizon}

    def rewind(self, fork: int, canonical: Mapping[int, str]) -> list[tuple[int, int, str]]:
        """Go back to ``fork`` after a reorg; return the delivered logs that left the chain.

        Logs above the fork are read again: the memory of delivered logs keeps
        those still on the chain from being delivered twice. Watchers take
        logs from the new branch from the fork on, whatever their live_from was:
        the blocks there are not the ones they were measured against.
        ``canonical`` maps block numbers to the node's hashes now; a delivered
        log whose block has another hash there is reported as gone.
        """
        if self.cursor is not None and self.cursor > fork:
            self.cursor = fork
        if self.read_through > fork:
            self.read_through = fork
            self._through_hash = None
        self.newest_log_block = min(self.newest_log_block, fork)
        for sub in self._members:
            sub.fork_below = fork if sub.fork_below is None else min(sub.fork_below, fork)
            if sub.live_from > fork + 1:
                # A resumed watcher's from_block is its position's: the new
                # branch below the position is owed to it too.
                sub.live_from = fork + 1 if sub.resumed else max(fork + 1, sub.from_block or 0)
            if sub.history_end is not None and sub.history_end > fork:
                sub.history_end = fork
        delivered = (
            (block, key, tx) for block, key in self._seen_order if (tx := self._seen.get(key)) is not None
        )
        from_history = (
            (block, (block_hash, index), tx)
            for block_hash, (block, logs) in self._from_history.items()
            for index, tx in logs.items()
        )
        gone = {
            (block, key[1], tx)
            for block, key, tx in (*delivered, *from_history)
            if block > fork and canonical.get(block) != key[0]
        }
        # Above the fork everything is delivered again: a watcher whose live_from
        # came down to the fork was not given those logs the first time, and
        # each watcher drops what it already yielded (see ``RecentlyYielded``).
        self._again.update(key for block, key in self._seen_order if block > fork and key in self._seen)
        return sorted(gone)

    def delivered_hashes(self, limit: int) -> dict[int, set[str]]:
        """Block hashes of the logs delivered lately, by height: the ``limit`` highest heights."""
        found = self._delivered_by_height()
        return {n: found[n] for n in sorted(found)[-limit:]}

    def blocks_handed_out(self) -> dict[int, set[str]]:
        """Block hashes, by height, of logs this lane delivered or its watchers read from history lately."""
        found = self._delivered_by_height()
        for block_hash, (block, _) in self._from_history.items():
            found.setdefault(block, set()).add(block_hash)
        return found

    def heights_above(self, fork: int) -> set[int]:
        """Heights above ``fork`` of the logs this lane delivered or its watchers got from history."""
        delivered = {block for block, _ in self._seen_order if block > fork}
        return delivered | {block for block, _ in self._from_history.values() if block > fork}

    def _delivered_by_height(self) -> dict[int, set[str]]:
        found: dict[int, set[str]] = {}
        for block, key in self._seen_order:
            if key in self._seen:
                found.setdefault(block, set()).add(key[0])
        return found

    def remember_all(self, logs: list[RawLog]) -> None:
        """Note logs a watcher got from history, so a reorg that takes one off the chain names it.

        Kept apart from the delivered logs: this lane has not delivered them to
        anyone, and after a reorg it may still owe them to its other watchers.
        Removed and pending logs are skipped; a catch-up passes every log it
        reads through here, so it is one loop, with no key built per log.
        """
        # Older than anything a reorg is followed back to: not kept.
        horizon = None if self.cursor is None else self.cursor - REDELIVERY_BLOCKS
        table = self._from_history
        for raw in logs:
            block_hash = raw.get("blockHash")
            if block_hash is None or raw.get("removed"):
                continue
            block = int(raw["blockNumber"], 16)
            if horizon is not None and block < horizon:
                continue
            block_hash = block_hash.lower()
            entry = table.get(block_hash)
            if entry is None:
                entry = table[block_hash] = (block, {})
            entry[1][int(raw["logIndex"], 16)] = str(raw.get("transactionHash"))

    def deliver(self, logs: list[RawLog]) -> None:
        """Route logs, in chain order, to the subscriptions that want them."""
        try:
            logs = sorted(logs, key=chain_order)
        except (KeyError, TypeError, ValueError, AttributeError):
            logs = sorted(filter(well_formed, logs), key=chain_order)
        for raw in logs:
            block_hash = raw.get("blockHash")
            if block_hash is None:
                continue  # a pending log: not on chain yet
            key = (block_hash.lower(), int(raw["logIndex"], 16))
            if raw.get("removed"):
                if key in self._seen:
                    log.warning(
                        "a log already delivered was removed by a reorg: block %d, index %d, "
                        "tx %s (use confirmations > 0 to wait for depth)",
                        int(raw["blockNumber"], 16),
                        key[1],
                        raw.get("transactionHash"),
                    )
                continue
            block = int(raw["blockNumber"], 16)
            if key in self._seen:
                if key not in self._again:
                    continue
                self._again.discard(key)  # once more, after a reorg (see rewind)
            else:
                self._seen[key] = str(raw.get("transactionHash"))
                heapq.heappush(self._seen_order, (block, key))
            if block > self.newest_log_block:
                self.newest_log_block = block
            spec = _EVERY_EVENT.spec_of(raw)
            if spec is None:
                continue
            targets = self._targets(spec.name, spec, raw)
            if not targets:
                continue
            try:
                event = spec.decode(raw)
            except LogDecodeError as exc:
                log.warning("skipping a log that does not decode: %s", exc)
                continue
            for sub in targets:
                if block >= sub.live_from:
                    sub.push(event)

    def _targets(self, name: str, spec: Any, raw: RawLog) -> list[Subscription]:
        found: list[Subscription] = []
        unscoped = self._unscoped.get(name)
        if unscoped:
            found.extend(unscoped)
        fields = self._fields.get(name)
        if fields:
            for field in fields:
                group = self._scoped.get((name, field, spec.scope_hex(raw, field)))
                if group:
                    found.extend(group)
        return found


class RecentlyYielded:
    """The identities of the events one watcher yielded lately, by (block hash, log index).

    A reorg sends the lane back to the fork and it delivers everything above
    it again (a history's last blocks included): what came out of the watcher
    once must not come out a second time. Every identity above the newest
    block minus ``REDELIVERY_BLOCKS`` is kept.
    """

    __slots__ = ("_keys", "_newest")

    def __init__(self) -> None:
        self._keys: dict[tuple[str, int], int] = {}
        self._newest = -1

    def seen(self, event: Any) -> bool:
        return (event.block_hash, event.log_index) in self._keys

    def add(self, event: Any) -> None:
        block: int = event.block_number
        self._keys[(event.block_hash, event.log_index)] = block
        if block > self._newest:
            self._newest = block
        if len(self._keys) > _KEEP_LOGS:
            horizon = self._newest - REDELIVERY_BLOCKS
            self._keys = {key: b for key, b in self._keys.items() if b > horizon}
