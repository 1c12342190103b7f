"""The live lane's node filter: install, poll answers, loss, refill and uninstall.

A filter is the cheap way to follow the head (one ``eth_getFilterChanges``
in the tick's batch), and a fragile one: nodes forget filters, answers that
the node has consumed get lost in transit, and a head read at install may lag
the block where the node really created the filter. This module owns all of
that for the hub's confirmations=0 lane; where its logs go and what the chain
looks like are the hub's and the chain view's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ogpu._errors import RpcError, RpcResponseError
from ogpu.events._abi import RawLog
from ogpu.events._chain import SPIKE, ChainView
from ogpu.events._faults import Backoff, Fault, classify
from ogpu.events._lane import Lane
from ogpu.events._ranges import LogRangeReader
from ogpu.events._rpc import RpcClient
from ogpu.events._screen import filter_changes

__all__ = ["LiveFilter"]

log = logging.getLogger("ogpu.events")

# A filter that fails this many polls in a row is treated as lost.
_FAILURES_BEFORE_RECREATE = 3
# Polls after an install that also read up to the believed head with
# eth_getLogs, at least; see _cover_install_lag.
_INSTALL_CHECKS = 3
# A refill after a lost filter starts this many blocks below the cursor: the
# cursor may have followed heads from a backend ahead of the filter's.
REFILL_MARGIN = 16
# How long a cancelled stream still waits for the id of a filter it asked for.
_CREATE_GRACE = 1.0
# eth_uninstallFilter tries before a filter is left to the node's idle expiry.
_UNINSTALL_TRIES = 4

Deliver = Callable[[Lane, list[RawLog], bool], list[RawLog]]


class LiveFilter:
    """The node filter behind the live lane, and the filters still to uninstall."""

    def __init__(
        self,
        client: RpcClient,
        reader: LogRangeReader,
        chain: ChainView,
        nexus: str,
        *,
        deliver: Deliver,
        read_head: Callable[[], Awaitable[int]],
        live_lane: Callable[[], Lane | None],
    ) -> None:
        self._client = client
        self._reader = reader
        self._chain = chain
        self._nexus = nexus
        self._address = nexus.lower()
        self._deliver = deliver
        self._read_head = read_head
        self._live_lane = live_lane
        self.id: str | None = None
        self.supported = True
        self._failures = 0
        # After an install: (last block read from eth_getLogs, polls left to
        # check, the block eth_getLogs must reach before checking ends).
        self._cover: tuple[int, int, int] | None = None
        # Logs above the believed head, delivered once a head reaches them.
        self._held: list[RawLog] = []
        # filter id -> (failed uninstall tries, tick of the next try)
        self._stale: dict[str, tuple[int, int]] = {}

    @property
    def steady(self) -> bool:
        """Installed, and the polls right after its install (which also read
        eth_getLogs) are done: from here a tick is one HTTP request."""
        return self.id is not None and self._cover is None

    @property
    def stale(self) -> list[str]:
        return list(self._stale)

    def retire(self) -> None:
        """The live lane emptied: a later one starts from a new head with a filter of its own."""
        if self.id is not None:
            self._stale[self.id] = (0, 0)
        self.id = None
        self._cover = None
        self._held = []

    def take_all(self) -> list[str]:
        """Every filter to uninstall at teardown; none is left to this object."""
        filters = [*self._stale, *([self.id] if self.id else [])]
        self.id = None
        self._stale = {}
        return filters

    # --- install ---

    async def install(self, live: Lane) -> None:
        """Create the filter, then refill from the cursor up to the head read after it."""
        # The filter is created before the head is read, so every block after
        # that head is covered by the filter and everything up to it by the
        # refill; the overlap is dropped by the lane's log memory.
        try:
            created = await self._create()
        except RpcResponseError as exc:
            if classify(exc) not in (Fault.UNSUPPORTED, Fault.FILTER_LOST):
                raise
            log.info(
                "node at %s offers no log filters (%s); following with eth_getLogs each tick",
                self._client.masked_url,
                exc,
            )
            self.supported = False
            if live.cursor is None:
                head = await self._read_head()
                live.start(head, head)
            return
        filter_id = str(created)
        try:
            seen_at_install = await self._read_head()
            believed = self._chain.head
            head = seen_at_install if believed is None else min(seen_at_install, believed)
            if live.cursor is None:
                # A first watcher may take the head block in (see Lane.start):
                # the lane then starts below it, and reads it here.
                live.start(head, head)
                assert live.cursor is not None
                first = live.cursor + 1
            else:
                first = max(0, live.cursor + 1 - REFILL_MARGIN)
            if head >= first:
                await self.refill(live, first, head, filter_id)
        except BaseException:
            # Polling this filter now would move the cursor past what the
            # refill did not reach: drop it, the next tick starts over.
            self._stale[filter_id] = (0, 0)
            raise
        if self._live_lane() is not live:
            # Its watchers left while it was being created: a later live lane
            # starts afresh with a filter of its own.
            self._stale[filter_id] = (0, 0)
            return
        self.id = filter_id
        self._failures = 0
        # Checked on every install: the head read at install may lag the block
        # where the node really created the filter, by a backend or a block
        # mined in between, so eth_getLogs reads on until it is past that head.
        # Blocks the previous filter reported beyond every head seen (consumed,
        # not delivered) stay owed, so checking goes on until they are read.
        owed = self._cover[2] if self._cover is not None else 0
        trusted = seen_at_install if seen_at_install <= head + SPIKE else head
        self._cover = (head, _INSTALL_CHECKS, max(trusted + 1, owed))

    async def _create(self) -> Any:
        """``eth_newFilter``; if the stream is closed meanwhile, the filter is still uninstalled.

        Cancelled after the request left, the node may have made the filter:
        its id is awaited (briefly) so the teardown can uninstall it.
        """
        request = asyncio.ensure_future(self._client.call("eth_newFilter", [{"address": self._nexus}]))
        try:
            return await asyncio.shield(request)
        except asyncio.CancelledError:
            # No answer in time: nothing is known to uninstall.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                self._stale[str(await asyncio.wait_for(request, _CREATE_GRACE))] = (0, 0)
            raise

    async def refill(self, live: Lane, first: int, last: int, filter_id: str | None = None) -> None:
        log.info("filter %s: refilling blocks %d..%d from eth_getLogs", filter_id or self.id, first, last)
        async for end, logs in self._reader.read(first, last):
            self._deliver(live, logs, True)
            live.advance(end)

    # --- one poll's answer ---

    async def take(self, live: Lane, answer: Any, done: int | None) -> None:
        """Deliver a poll's answer and move the cursor to ``done``; a loss makes a gap instead."""
        if isinstance(answer, RpcResponseError):
            fault = classify(answer)
            if fault is Fault.FILTER_LOST:
                self.lose(f"the node no longer knows it ({answer})")
                return
            if fault is Fault.UNSUPPORTED:
                log.info("node rejects eth_getFilterChanges (%s); switching to eth_getLogs", answer)
                self.supported = False
                self.lose("filters are not supported")
                return
            self._failures += 1
            if self._failures >= _FAILURES_BEFORE_RECREATE:
                self.lose(f"{self._failures} polls in a row failed ({answer})")
                return
            raise answer
        if isinstance(answer, BaseException):
            raise answer
        logs = filter_changes(answer, self._address)
        if logs is None:
            self.lose(f"the node answered {answer!r:.40} instead of its changes")
            return
        self._failures = 0
        if self._cover is not None:
            logs = await self._cover_install_lag(live, logs)
        held, self._held = self._held, []
        self._held = self._deliver(live, logs + held, False)
        if self._held and done is not None:
            # A log held at or below ``done`` (its height reported two blocks,
            # waiting for a header) is not delivered yet: the cursor stays below it.
            done = min(done, min(int(raw["blockNumber"], 16) for raw in self._held) - 1)
        if done is not None:
            live.advance(done)

    async def _cover_install_lag(self, live: Lane, changes: list[RawLog]) -> list[RawLog]:
        """Read up to the believed head with eth_getLogs; return the changes to deliver.

        The filter covers blocks mined after it was created. A lagging
        backend may have reported a head below the real one at that moment,
        and the blocks in between would be in neither the refill nor the
        filter; so after an install, eth_getLogs reads up to the believed
        head until it has read past the head seen at install, for a few polls
        at least, before the filter's logs are delivered. Filter logs above
        what it read are set aside (eth_getLogs reads them in a later poll),
        so nothing newer is delivered before something older.
        """
        assert self._cover is not None and live.cursor is not None
        covered, checks, needed = self._cover
        head = self._chain.head if self._chain.head is not None else covered
        blocks = [int(raw["blockNumber"], 16) for raw in changes]
        # Recorded before reading: if the read fails, these changes are consumed
        # and not delivered, and the next filter's checks must still reach them.
        needed = max([needed, *(b for b in blocks if b <= head + SPIKE)])
        self._cover = (covered, checks, needed)
        first, last = max(covered, live.cursor) + 1, max(covered, head)
        if last >= first:
            log.info(
                "filter %s: reading blocks %d..%d from eth_getLogs (the install head may have lagged)",
                self.id,
                first,
                last,
            )
            try:
                async for end, logs in self._reader.read(first, last):
                    self._deliver(live, logs, True)
                    live.advance(end)
            except Exception:
                # The filter's answer in hand is consumed and not delivered: a gap.
                self.lose(f"blocks {first}..{last} could not be read before its changes")
                raise
        if checks > 1 or needed > last:
            self._cover = (last, checks - 1, needed)
            # If every head answer lags, the block the cover waits for is found by its number.
            self._chain.expect(needed)
            # Logs far beyond every head stay in, for the triage to drop with a WARNING.
            return [raw for raw, b in zip(changes, blocks, strict=True) if not last < b <= head + SPIKE]
        self._cover = None
        return changes

    def lose(self, why: str) -> None:
        """The filter is gone or its answer was: recreate it on the next tick and refill the gap."""
        if self.id is None:
            return  # already dropped: its live lane emptied while a call was out
        live = self._live_lane()
        cursor = live.cursor if live is not None else None
        log.warning(
            "filter %s dropped: %s; will recreate it and refill from block %s",
            self.id,
            why,
            None if cursor is None else max(0, cursor + 1 - REFILL_MARGIN),
        )
        self._stale[self.id] = (0, 0)
        self.id = None

    # --- uninstalling ---

    async def uninstall_stale(self, tick: int) -> None:
        """One try per due filter per tick, backing off by ticks; the poll itself is never held up."""
        for filter_id, (tries, due) in list(self._stale.items()):
            if due > tick:
                continue
            try:
                await self._client.call("eth_uninstallFilter", [filter_id])
            except RpcError as exc:
                tries += 1
                if tries >= _UNINSTALL_TRIES:
                    log.warning(
                        "could not uninstall filter %s after %d tries (%s); the node expires it",
                        filter_id,
                        tries,
                        exc,
                    )
                    self._stale.pop(filter_id, None)
                else:
                    log.warning("eth_uninstallFilter %s failed (%s); will try again", filter_id, exc)
                    self._stale[filter_id] = (tries, tick + 2**tries)
                continue
            # Taken off the list only now: if the stream is closed during the
            # call, the teardown still uninstalls it.
            self._stale.pop(filter_id, None)

    async def uninstall_all(self, filter_ids: list[str]) -> None:
        """Teardown: each filter tried a few times, quickly (the caller keeps the time box)."""
        backoff = Backoff(base=0.05, cap=0.4)
        for filter_id in filter_ids:
            for attempt in range(1, _UNINSTALL_TRIES + 1):
                try:
                    await self._client.call("eth_uninstallFilter", [filter_id])
                    break
                except RpcError as exc:
                    if attempt == _UNINSTALL_TRIES:
                        log.warning("could not uninstall filter %s (%s); the node expires it", filter_id, exc)
                        break
                    await asyncio.sleep(backoff.next_delay(exc))
