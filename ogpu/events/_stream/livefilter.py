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
from ogpu.events._codec.abi import RawLog
from ogpu.events._net.answers import chain_order, filter_changes, logs_in_range
from ogpu.events._net.endpoints import FilterOnOtherEndpoint
from ogpu.events._net.faults import Backoff, Fault, classify
from ogpu.events._net.headers import header_calls, headers_by_number
from ogpu.events._net.ranges import LogRangeReader
from ogpu.events._net.rpc import JsonRpc
from ogpu.events._stream.chain import SPIKE, ChainView
from ogpu.events._stream.doubt import FilterDoubt
from ogpu.events._stream.lane import Lane
from ogpu.events._stream.screen import uncontradicted

__all__ = ["LiveFilter"]

log = logging.getLogger("ogpu.events")

# A filter that fails this many polls in a row is treated as lost.
_FAILURES_BEFORE_RECREATE = 3
# The widest cover read that rides in the tick's batch; a wider gap (after an
# outage) is read apart, in the reader's chunks.
COVER_IN_BATCH = 256
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
        client: JsonRpc,
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
        # Whether the filter vouches for blocks yet (see ``_doubt``).
        self.doubt = FilterDoubt()
        self._told = False  # the cover read's INFO line said, this doubt
        # Logs above the believed head, delivered once a head reaches them;
        # while in doubt, also the filter's logs above what eth_getLogs covered.
        self._held: list[RawLog] = []
        # filter id -> (failed uninstall tries, tick of the next try)
        self._stale: dict[str, tuple[int, int]] = {}

    @property
    def steady(self) -> bool:
        """Installed and proven (see ``_doubt``): a tick's batch is the headers and the filter's changes."""
        return self.id is not None and not self.doubt.active

    def cover_range(self) -> tuple[int, int] | None:
        """Blocks to read by eth_getLogs this tick while the filter is in doubt (see ``_doubt``).

        Only once a head has been shown twice: an empty answer for a block is
        taken as proof, and the first head may come from a backend ahead.
        """
        if self._chain.head_shown_twice is None:
            return None
        return self.doubt.cover_range(self._chain.safe_end)

    def batchable(self, first: int, last: int) -> bool:
        """Whether a cover read of ``first..last`` fits in the tick's batch (else it is read apart)."""
        return last - first + 1 <= min(COVER_IN_BATCH, self._reader.span)

    def retire(self) -> None:
        """The live lane emptied: a later one starts from a new head with a filter of its own."""
        if self.id is not None:
            self._stale[self.id] = (0, 0)
        self.id = None
        self.doubt.clear()
        self._held = []

    def rewound(self, fork: int) -> None:
        """A reorg parted the chains after ``fork``: what is held above it is dropped and read again.

        The held logs come from blocks that may have left the chain; the
        blocks above the fork are read again by eth_getLogs (the doubt comes
        back), so a log still on the chain is not lost by dropping it here.
        """
        self._held = [raw for raw in self._held if _block(raw) <= fork]
        if self.id is not None:
            # Covered up to the fork at most, and never beyond the lane's cursor:
            # a cursor that had not reached the fork yet has read no further.
            live = self._live_lane()
            cursor = live.cursor if live is not None else None
            self.doubt.rewound(fork if cursor is None else min(fork, cursor))
            self._told = False

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
                # Not the raw answer: a backend ahead may show a block the one
                # that answers eth_getLogs lacks. The lane starts at a head the
                # chain believes, shown twice where it has been (the lower).
                start = _lowest(await self._read_head(), self._chain.safe_end)
                live.start(start, start)
            return
        filter_id = str(created)
        try:
            # The lower of the head read now and the safe end: a backend ahead may
            # show a block the one that answers eth_getLogs lacks (see the no-filter case above).
            head = _lowest(await self._read_head(), self._chain.safe_end)
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
        # In doubt from here (see ``_doubt``): the refill read up to the
        # cursor, and the filter vouches for nothing yet. Logs a previous
        # filter handed over and that wait above the head stay held; the
        # cover reads their blocks anyway.
        assert live.cursor is not None
        self.doubt.begin(live.cursor)
        self._told = False

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
        await self._read(live, first, last)

    async def _read(self, live: Lane, first: int, last: int) -> None:
        """Read ``first..last`` by eth_getLogs in chunks, delivering and covering each."""
        async with contextlib.aclosing(self._reader.read(first, last)) as chunks:
            async for end, logs in chunks:
                if not await self._on_pinned_chain(first, end) or not self._cover(live, first, end, logs):
                    return
                first = end + 1

    async def _on_pinned_chain(self, first: int, last: int) -> bool:
        """Whether a chunk just read stands on the pinned chain: its last block exists, the one below is ours.

        A chain replaced or reorged below the chunk between two chunks would
        otherwise hand over its higher blocks before the stream has gone back
        for its lower ones. Asked after the read, so a move before it shows.
        """
        numbers = sorted({n for n in (first - 1, last) if n >= 0})
        headers = headers_by_number(numbers, await self._client.batch(header_calls(numbers)))
        if headers[last] is None:
            return False  # the answering backend lacks it: read again later
        # The last block too, where pinned: a read retried after the chain was
        # replaced (another endpoint, a restarted node) may span heights no
        # header pinned below it, and only the top shows the move.
        below_ok = self._chain.holds(first - 1, headers.get(first - 1))
        if not below_ok or not self._chain.holds(last, headers[last]):
            log.info("blocks below %d..%d changed while it was read; read again once followed", first, last)
            return False
        return True

    def _cover(self, live: Lane, first: int, last: int, logs: list[RawLog]) -> bool:
        """Deliver what eth_getLogs read of ``first..last``; the lane's cursor may pass those blocks.

        False if the read contradicts the pinned chain: it is taken only below
        the first such block, and the stream follows the move before reading on.
        """
        logs, through, moved = uncontradicted(self._chain, logs, last)
        if moved is not None:
            log.info(
                "eth_getLogs %d..%d answered from a chain that moved at block %d; read again once followed",
                first,
                last,
                moved,
            )
            if through < first:
                return False
        self._deliver(live, logs, True)
        live.covered(first, through)
        live.advance(through)
        self.doubt.read(first, through)
        return moved is None

    # --- one poll's answer ---

    async def take(
        self, live: Lane, answer: Any, done: int | None, cover: tuple[int, int, Any] | None = None
    ) -> None:
        """Deliver a poll's answer and move the cursor to ``done``; a loss makes a gap instead.

        ``cover``: while in doubt, ``(first, last, answer)`` of the eth_getLogs
        read that rode in the same batch (the answer ``None`` if it cannot be
        trusted: the batch's head had not reached ``last``).
        """
        if isinstance(answer, RpcResponseError):
            fault = classify(answer)
            if fault is Fault.FILTER_LOST:
                if isinstance(answer, FilterOnOtherEndpoint):
                    # Another endpoint serves the stream now: a new filter there, the gap read.
                    self.lose(f"another endpoint serves the stream now ({answer})", expected=True)
                else:
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
        doubt = self.doubt
        if doubt.active:
            head = self._chain.head
            doubt.note(
                ((_block(raw), str(raw["blockHash"])) for raw in logs if _proves(raw)),
                self._chain.pinned,
                None if head is None else head + SPIKE,
            )
            # Held first: if the cover read fails, these consumed changes are not lost.
            self._held, logs = self._held + logs, []
            await self._read_cover(live, cover)
            if doubt.settle():
                log.info("filter %s reports every log from block %s on", self.id, doubt.proven_from)
        if doubt.active and self._chain.head is not None:
            # If every head answer lags, the next block is found by its number
            # (a block mined before the filter may sit there, shown by no head).
            self._chain.ask_by_number(self._chain.head + 1)
        held, self._held = self._held, []
        logs = logs + held
        waiting: list[RawLog] = []
        if doubt.active:
            # Nothing above what eth_getLogs covered is delivered yet: a block
            # below it may still hold a log the filter never had.
            waiting = [raw for raw in logs if not doubt.deliverable(_block(raw))]
            logs = [raw for raw in logs if doubt.deliverable(_block(raw))]
            done = None
        self._held = self._deliver(live, logs, False) + waiting
        if self._held and done is not None:
            # A log held at or below ``done`` (its height reported two blocks,
            # waiting for a header) is not delivered yet: the cursor stays below it.
            done = min(done, min(int(raw["blockNumber"], 16) for raw in self._held) - 1)
        proven = doubt.proven_from
        if done is not None and live.cursor is not None and proven is not None:
            # Proven (see ``_doubt``): the answer covers every block after the
            # cursor up to ``done``, all of them at or above the proof.
            live.covered(max(live.cursor + 1, proven), done)
            live.advance(done)

    async def _read_cover(self, live: Lane, cover: tuple[int, int, Any] | None) -> None:
        """Take the cover read of this tick's batch; a gap too wide for a batch is read apart."""
        if cover is None:
            wide = self.cover_range()
            if wide is not None and not self.batchable(*wide):
                await self._read(live, *wide)
            return
        first, last, answer = cover
        if self.doubt.covered is None or first != self.doubt.covered + 1:
            return  # asked before this tick's reorg moved what is covered: read again from there
        if isinstance(answer, RpcResponseError) and classify(answer) is Fault.RANGE_TOO_LARGE:
            await self._read(live, first, last)  # the reader learns the provider's cap
            return
        if answer is None or isinstance(answer, BaseException):
            return  # read again next tick; nothing moves over it meanwhile
        try:
            logs = logs_in_range(answer, self._address, first, last)
        except RpcError as exc:
            log.info("eth_getLogs %d..%d failed (%s); read again next tick", first, last, exc)
            return
        # Said once a doubt, not each tick: a quiet chain may keep it for long.
        log.log(
            logging.DEBUG if self._told else logging.INFO,
            "filter %s: reading blocks %d..%d from eth_getLogs (the install head may have lagged; "
            "the filter vouches for blocks once it reports a log)",
            self.id,
            first,
            last,
        )
        self._told = True
        self._cover(live, first, last, logs)

    def lose(self, why: str, *, expected: bool = False) -> None:
        """The filter is gone or its answer was: recreate it on the next tick and refill the gap.

        ``expected``: the consequence of a switch of endpoints, which was
        logged already; said at INFO.
        """
        if self.id is None:
            return  # already dropped: its live lane emptied while a call was out
        live = self._live_lane()
        cursor = live.cursor if live is not None else None
        log.log(
            logging.INFO if expected else logging.WARNING,
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


def _lowest(read: int, safe_end: int | None) -> int:
    return read if safe_end is None else min(read, safe_end)


def _block(raw: RawLog) -> int:
    return chain_order(raw)[0]


def _proves(raw: RawLog) -> bool:
    # A removal may name a block from before the filter; a pending log none.
    return not raw.get("removed") and raw.get("blockHash") is not None
