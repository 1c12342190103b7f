"""The shared stream: one filter and one poll loop per (event loop, RPC URLs, Nexus).

Every watcher in a process rides the same hub, so the node sees one HTTP
request per tick however many watchers run: a JSON-RPC batch of the latest
block header, the headers the chain view asks for (the anchor first), and
``eth_getFilterChanges``. The hub moves bytes and applies decisions; what an
answer means is decided without I/O in ``chain`` (heads and hashes, and
``ChainView.safe_end``, the one head lanes read up to), ``screen`` (logs)
and ``doubt`` (when a filter vouches for a block), and lanes own delivery
and the cursor rule.

What the stream promises (exactly once, in chain order, through reorgs,
lost filters, lagging and replaced chains) is written once, in README.md,
"What it guarantees"; this is where each promise is kept:

* the chain pinned by hash, reorgs and replaced chains: ``_tick``,
  ``_reconcile`` and ``ChainView``;
* the live lane over a node filter, its doubt, loss and refill: ``LiveFilter``;
* ``confirmations=N`` lanes and nodes without filters: ``RangeFollower``;
* history and ``after=``: ``read_history`` (kept on the pinned chain by
  ``_HistoryGuard``) and ``resume``;
* transient faults: ``Retrier.run``, the library's one retry loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import Counter
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from ogpu._errors import (
    ChainChangedError,
    OGPUError,
    RpcError,
    RpcHttpError,
    RpcProtocolError,
    RpcResponseError,
    RpcTransportError,
    UnsupportedNodeError,
)
from ogpu.events._codec.abi import EventSpec, RawLog
from ogpu.events._net.endpoints import EndpointPool, open_client
from ogpu.events._net.faults import Fault, Retrier, classify
from ogpu.events._net.headers import Header, header_calls, header_of, headers_by_number, maybe_header
from ogpu.events._net.ranges import LogRangeReader, ProgressCallback
from ogpu.events._net.rpc import Call, JsonRpc
from ogpu.events._stream import memory
from ogpu.events._stream.chain import ChainView, HeadAnswer, LaggingBackend
from ogpu.events._stream.depth import RangeFollower
from ogpu.events._stream.history import read_history
from ogpu.events._stream.lane import Lane, Subscription
from ogpu.events._stream.livefilter import LiveFilter
from ogpu.events._stream.screen import first_contradicted, triage

__all__ = ["Hub", "active_hubs", "every_hub", "hub_for", "hubs_at"]

log = logging.getLogger("ogpu.events")

_TEARDOWN_TIMEOUT = 2.0
# Heights of delivered logs whose headers a fork search also asks for.
_DELIVERED_HEIGHTS = 128
# Replaced blocks' hashes remembered for after= (oldest forgotten first).
_REPLACED_KEPT = 4_096
# Logs that left the chain named per WARNING line (every one is named).
_NAMED_PER_LINE = 10
# Blocks below the first head whose headers come with the start-up check of that head.
_PINNED_AT_START = 16
# A tick that fails for any of these is tried again after a pause: the lost
# filter and the too-wide range are met inside the tick, by the next one.
_TICK_RETRIED = (Fault.TRANSIENT, Fault.FILTER_LOST, Fault.RANGE_TOO_LARGE)
# Head answers that agree with the pinned chain: their number can be trusted as far as it goes.
_CONSISTENT = (HeadAnswer.NEW, HeadAnswer.SAME, HeadAnswer.BEHIND)


_Key = tuple[tuple[str, ...], str]


class Hub:
    """One shared, exactly-once stream of Nexus logs over one endpoint or several of one chain."""

    def __init__(self, urls: tuple[str, ...], nexus: str, registry: dict[_Key, Hub]) -> None:
        self.urls = urls
        self.url = urls[0]
        self.nexus = nexus
        # Several URLs: a pool that answers as one client and fails over
        # between them (see ``_net/endpoints.py``); one URL: the client itself.
        self.client: JsonRpc = open_client(urls)
        self.reader = LogRangeReader(self.client, nexus)
        self.chain = ChainView()
        self.lanes: dict[int, Lane] = {}
        self.ticks = 0
        self.reorgs = 0  # chains followed anew (reorgs and replaced chains)
        # Hash of a block a reorg replaced -> the last block both chains shared.
        self.replaced: dict[str, int] = {}
        # The head the latest answer reported, never above the believed one.
        # Not a cursor: the live lane moves to the lower of the last two of
        # these (see _tick); the getLogs-only live lane reads up to it.
        self._answered_head: int | None = None
        self._last_verdict: HeadAnswer | None = None
        self.ranges = RangeFollower(
            self.client, self.reader, self.chain, lambda lane, logs: self._deliver(lane, logs)
        )
        self.filter = LiveFilter(
            self.client,
            self.reader,
            self.chain,
            nexus,
            deliver=lambda lane, logs, asked: self._deliver(lane, logs, asked=asked),
            read_head=self._read_head,
            live_lane=lambda: self.lanes.get(0),
        )
        self._intervals: Counter[float] = Counter()
        self._wake = asyncio.Event()
        self._retrier = Retrier(lambda: self.client.ever_answered, self.client.masked_url)
        self._task: asyncio.Task[None] | None = None
        self._tick_started = 0.0
        self._error: BaseException | None = None
        self._registry = registry
        self._closed = False

    @property
    def pool(self) -> EndpointPool | None:
        """The endpoints and their states, when the stream has several (None for one URL)."""
        return self.client if isinstance(self.client, EndpointPool) else None

    @property
    def head(self) -> int | None:
        """The highest head the stream believes (glitched answers are not believed)."""
        return self.chain.head

    @property
    def subscriber_count(self) -> int:
        return sum(lane.size for lane in self.lanes.values())

    @property
    def filter_id(self) -> str | None:
        return self.filter.id

    @property
    def failure(self) -> BaseException | None:
        """The error the poll loop is retrying now; None once a poll succeeds."""
        return self._retrier.failure

    @property
    def steady(self) -> bool:
        """From here a tick is one HTTP request (see ``LiveFilter.steady``)."""
        return self.filter.steady

    # --- joining and leaving ---

    async def subscribe(self, sub: Subscription) -> None:
        """Add ``sub`` and wait until its lane knows where it starts."""
        if self._error is not None:
            raise self._error
        lane = self.lanes.get(sub.confirmations)
        if lane is None:
            lane = self.lanes[sub.confirmations] = Lane(sub.confirmations)
            self._wake.set()
        # "New" is never measured from a head a backend on another fork made up.
        sub.head_at_join = self.chain.safe_end
        lane.add(sub, self.head)
        fastest = min(self._intervals) if self._intervals else None
        self._intervals[sub.poll_interval] += 1
        if fastest is not None and sub.poll_interval < fastest:
            self._wake.set()  # the loop is sleeping for longer than this watcher allows
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"ogpu.events {self.client.masked_url}"
            )
        try:
            await lane.ready.wait()
            if self._error is not None:
                raise self._error
        except BaseException:
            await self.unsubscribe(sub)
            raise

    async def unsubscribe(self, sub: Subscription) -> None:
        lane = self.lanes.get(sub.confirmations)
        if lane is None or not lane.remove(sub):
            return
        self._intervals[sub.poll_interval] -= 1
        if self._intervals[sub.poll_interval] <= 0:
            del self._intervals[sub.poll_interval]
        if lane.size == 0:
            del self.lanes[sub.confirmations]
            if sub.confirmations == 0:
                self.filter.retire()
        if not self.lanes:
            await self.close()

    async def close(self) -> None:
        """Stop polling, uninstall the filter, close the HTTP client."""
        if self._closed:
            return
        self._closed = True
        memory.remember(self.urls, self.blocks_seen())
        if self._registry.get((self.urls, self.nexus)) is self:
            del self._registry[(self.urls, self.nexus)]
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            # Not ``await task``: a caller cancelled meanwhile would cancel the
            # teardown too (leaving the filter installed), and suppressing the
            # task's CancelledError would swallow the caller's own.
            await asyncio.wait([task])
        elif task is None:
            await self.client.aclose()

    def blocks_seen(self) -> dict[int, str]:
        """Block hashes by height as this stream knows them: pinned, or blocks of the logs it handed out.

        The pins are a window; the blocks of delivered logs reach further
        down, and are what a watcher handled (for ``after=``, see memory.py).
        """
        seen: dict[int, str] = {}
        for lane in self.lanes.values():
            for number, hashes in lane.blocks_handed_out().items():
                if len(hashes) == 1:
                    seen[number] = next(iter(hashes))
        seen.update(self.chain.pins())
        return seen

    def poll_now(self) -> None:
        """Cut the current sleep short: the next tick starts at once (a fake node just mined)."""
        if self._task is not None and not self._task.done():
            self._wake.set()

    def abandon(self, reason: str) -> asyncio.Task[None] | None:
        """Stop without waiting, the node being gone: every watcher raises ``OGPUError(reason)``.

        The poll task is cancelled; it uninstalls its filter and closes the
        client on its own when its event loop next runs. Returns that task
        (None if none is left), for a caller that can wait for it.
        """
        task = self._task if self._task is not None and not self._task.done() else None
        if self._closed:
            return task
        self._fail_everyone(OGPUError(reason))
        memory.remember(self.urls, self.blocks_seen())
        self._closed = True  # so the cancelled loop does not report its own cancellation too
        if task is not None:
            task.cancel()
        return task

    # --- history for one watcher ---

    def history(
        self,
        specs: Sequence[EventSpec],
        field: str | None,
        scope: str | None,
        first: int,
        last: int,
        progress: ProgressCallback | None = None,
        confirmations: int = 0,
        sub: Subscription | None = None,
    ) -> AsyncGenerator[Any, None]:
        """Decoded past events of ``specs`` in ``first..last``, scoped like a watcher.

        Given the watcher's ``sub``, history follows the pinned chain (see
        ``read_history``) and ends where a reorg hands the rest to the lane.
        """

        def remember(logs: list[RawLog]) -> None:
            lane = self.lanes.get(confirmations)
            if lane is not None:
                lane.remember_all(logs)

        if sub is not None:
            sub.history_end = last
        return read_history(
            self.reader,
            specs,
            field,
            scope,
            first,
            last,
            progress=progress,
            remember=remember,
            stream_error=lambda: self._error,
            guard=None if sub is None else _HistoryGuard(self, sub),
        )

    # --- the poll loop ---

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while await self._retrier.run(
                self._tick_while_followed,
                "poll",
                retried=_TICK_RETRIED,
                # Filters and eth_getLogs are handled where they are called; what
                # gets here is a node without block headers, which no retry helps.
                unsupported=lambda exc: UnsupportedNodeError(
                    f"node cannot report its head: {exc}", url=self.client.masked_url
                ),
            ):
                self.ticks += 1
                await self._sleep(min(self._intervals, default=0.0) - (loop.time() - self._tick_started))
        except asyncio.CancelledError:
            if not self._closed:
                # Cancelled by someone other than close() (say, a loop shutting
                # down): the watchers must not wait forever on a dead stream.
                self._fail_everyone(OGPUError("the shared Nexus stream task was cancelled"))
            raise
        except Exception as exc:
            log.error("the Nexus stream at %s stopped: %s", self.client.masked_url, exc)
            self._fail_everyone(exc)
        finally:
            await self._teardown()

    async def _tick_while_followed(self) -> bool:
        """One tick, while any watcher is left; False once none is (the loop ends)."""
        # Taken at every try: the pause after a failed tick is not taken off the next sleep.
        self._tick_started = asyncio.get_running_loop().time()
        if not self.lanes:
            return False
        await self._tick()
        return True

    async def _sleep(self, seconds: float) -> None:
        # The wake-up is cleared when a tick starts, not here: one set while
        # the tick ran (a new lane, a faster watcher) cuts this sleep short.
        if seconds > 0 and not self._wake.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)

    def _fail_everyone(self, exc: BaseException) -> None:
        self._error = exc
        if self._registry.get((self.urls, self.nexus)) is self:
            del self._registry[(self.urls, self.nexus)]
        for lane in self.lanes.values():
            for sub in lane.subscriptions():
                sub.fail(exc)
            lane.ready.set()

    async def _teardown(self) -> None:
        self._closed = True
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.filter.uninstall_all(self.filter.take_all()), _TEARDOWN_TIMEOUT)
        finally:
            await self.client.aclose()

    async def _tick(self) -> None:
        self._wake.clear()
        live = self.lanes.get(0)
        if live is not None and self.filter.supported and self.filter.id is None:
            await self.filter.install(live)
        polling = live is not None and self.filter.id is not None
        # While the filter is in doubt, eth_getLogs covers the blocks believed
        # so far, in the same request: the node still sees one per tick.
        cover = self.filter.cover_range() if polling else None
        if cover is not None and not self.filter.batchable(*cover):
            cover = None  # a wide gap: LiveFilter.take reads it apart, in chunks
        checks = self.chain.checks()
        if cover is not None:
            # The cover's last block, asked beside it: the answering backend must
            # have it; and the block below its first: a chain that moved under it shows.
            checks = sorted({*checks, cover[1], *([cover[0] - 1] if cover[0] > 0 else [])})
        calls: list[Call] = [("eth_getBlockByNumber", ["latest", False])]
        calls += header_calls(checks)
        if self.chain.chain_id is None:
            calls.append(("eth_chainId", []))
        if cover is not None:
            query = {"address": self.nexus, "fromBlock": hex(cover[0]), "toBlock": hex(cover[1])}
            calls.append(("eth_getLogs", [query]))
        if polling:
            calls.append(("eth_getFilterChanges", [self.filter.id]))
        try:
            answers = await self.client.batch(calls)
        except RpcError as exc:
            if polling and _answer_may_be_lost(exc):
                self.filter.lose(f"the answer to eth_getFilterChanges was lost ({exc})")
            raise
        changes = answers.pop() if polling else None
        covering = answers.pop() if cover is not None else None
        try:
            latest = header_of(answers[0], "latest")
            # A check the node refused (an error, not null) says nothing either
            # way: the block is asked for again next tick.
            refused = _refused(checks, answers[1:])
            if refused:
                log.info(
                    "could not check blocks %s this tick (%s); asking again",
                    refused,
                    answers[1 + checks.index(refused[0])],
                )
            checked = {
                n: maybe_header(a, hex(n))
                for n, a in zip(checks, answers[1:], strict=False)
                if n not in refused
            }
            if self.chain.chain_id is None and not isinstance(answers[-1], BaseException):
                self.chain.chain_id = _quantity(answers[-1], "eth_chainId")
            below = await self._first_contact(latest) if self.chain.head is None else None
            verdict = self.chain.observe(latest, checked)
            if below is not None:
                self.chain.pin_below(below)
            if verdict is HeadAnswer.DIVERGED:
                verdict = await self._reconcile(latest)
        except Exception as exc:
            if polling and not isinstance(changes, BaseException):
                # The node has handed over (and forgotten) the filter's changes,
                # but without a head they can be trusted against, they cannot
                # be put in place: a gap.
                self.filter.lose(f"the head beside it could not be used ({exc})")
            raise
        head = self.chain.head
        assert head is not None
        self._note_head()
        lagging = verdict is HeadAnswer.BEHIND and self._last_verdict is not HeadAnswer.BEHIND
        if lagging and latest.number < head:
            log.info(
                "node reported head %d below %d (a lagging backend?); cursors stay where they are",
                latest.number,
                head,
            )
        self._last_verdict = verdict
        if verdict is HeadAnswer.HELD:
            log.warning(
                "node reported head %d, far above the %s believed so far; not believed until confirmed",
                latest.number,
                self.chain.head,
            )
        # Ranges end at the lower of the last two answers: a load-balanced node
        # may report a head that the backend holding the filter has not reached.
        answered = latest.number if verdict in _CONSISTENT else head
        previous, self._answered_head = self._answered_head, min(answered, head)
        if polling and self.lanes.get(0) is not live:
            # Its watchers left while the poll was out, and unsubscribe dropped
            # the filter: what it returned belongs to no one.
            polling, live = False, self.lanes.get(0)

        if polling and live is not None:
            both_answered = None if previous is None else min(previous, self._answered_head)
            taken = None
            if cover is not None:
                # Only what this request's own head has reached: a backend
                # behind answers [] for blocks it lacks, which proves nothing.
                shown = checked.get(cover[1])
                trusted = verdict in _CONSISTENT and (
                    (verdict is not HeadAnswer.BEHIND and latest.number >= cover[1])
                    or (shown is not None and shown.hash == self.chain.pinned(cover[1]))
                )
                taken = (*cover, covering if trusted else None)
            await self.filter.take(live, changes, both_answered, taken)
        elif live is not None and not self.filter.supported:
            await self.ranges.follow(live, self._answered_head)
        # Depth is counted from the safe end: a head from a backend on another
        # fork would otherwise let a shallow block through.
        safe_end = self.chain.safe_end
        assert safe_end is not None
        for depth, lane in list(self.lanes.items()):
            if depth > 0:
                await self.ranges.follow(lane, safe_end - depth)
        await self.filter.uninstall_stale(self.ticks)

    async def _reconcile(self, latest: Header) -> HeadAnswer:
        """A pinned block changed: find where the chains part and read the new branch.

        Returns what the head answer turned out to be: a lagging backend
        (nothing changed, nothing moves), or a chain followed anew.
        """
        delivered: dict[int, set[str]] = {}
        for lane in self.lanes.values():
            for number, hashes in lane.delivered_hashes(_DELIVERED_HEIGHTS).items():
                delivered.setdefault(number, set()).update(hashes)
        numbers = sorted({*self.chain.fork_queries(), *delivered})
        answers = await self.client.batch([*header_calls(numbers), ("eth_chainId", [])])
        chain_id = answers.pop()
        if not isinstance(chain_id, BaseException):
            actual = _quantity(chain_id, "eth_chainId")
            expected = self.chain.chain_id
            if expected is not None and actual != expected:
                raise ChainChangedError(
                    f"the node now serves chain {actual}, not chain {expected} this stream followed",
                    expected=expected,
                    actual=actual,
                    url=self.client.masked_url,
                    method="eth_chainId",
                )
        headers = headers_by_number(numbers, answers)
        pool, head = self.pool, self.chain.head
        if (
            pool is not None
            and head is not None
            and pool.serving_lags(head)
            and all(h is None or self.chain.pinned(n) in (None, h.hash) for n, h in headers.items())
        ):
            # Only missing blocks, from an endpoint behind another that showed
            # them: a lagging endpoint (the others being down), not a made-up tip.
            log.info("the endpoint answering lags block %s that another showed; nothing moves", head)
            return HeadAnswer.BEHIND
        fork = self.chain.locate_fork(headers, delivered)
        if isinstance(fork, LaggingBackend):
            log.info("a backend behind block %s answered; nothing moves", self.chain.head)
            return HeadAnswer.BEHIND
        found = headers.get(fork.number)
        if not fork.replaced and found is not None:
            await self._check_fork(fork.number, found.hash)
        old_head = self.chain.head
        # Remembered for after=: a node that keeps no side blocks cannot say
        # where a replaced block's chain parted from its own; this stream can.
        # Its delivered logs' blocks too: the pins are a window with gaps.
        seen_above = [h for n, h in self.blocks_seen().items() if n > fork.number]
        for old_hash in [*seen_above, *self.chain.above(fork.number).values()]:
            self.replaced[old_hash] = fork.number
        while len(self.replaced) > _REPLACED_KEPT:
            del self.replaced[next(iter(self.replaced))]
        self.chain.rebase(fork, headers, latest)
        self.reorgs += 1
        canonical = {n: h.hash for n, h in headers.items() if h is not None}
        canonical.update(await self._hashes_at(fork.number, canonical))
        gone: list[tuple[int, int, str]] = []
        for lane in self.lanes.values():
            gone.extend(lane.rewind(fork.number, canonical))
        self._answered_head = min(self._answered_head or 0, max(fork.number, 0))
        if fork.replaced:
            log.warning(
                "the node's chain was replaced: none of the blocks this stream verified up to %s is on it "
                "(a development node restarted?); following the new chain from block %d",
                old_head,
                fork.number + 1,
            )
        else:
            log.warning(
                "reorg: blocks %d..%s were replaced; reading the new branch from block %d",
                fork.number + 1,
                old_head,
                fork.number + 1,
            )
        if gone:
            # Every one named, ten to a line: a user must be able to find each
            # event they acted on that is no longer on the chain.
            named = sorted(set(gone))
            for at in range(0, len(named), _NAMED_PER_LINE):
                part = named[at : at + _NAMED_PER_LINE]
                log.warning(
                    "reorg at block %d: %d logs already yielded left the chain%s: %s",
                    fork.number + 1,
                    len(named),
                    f" ({at + 1}-{at + len(part)})" if len(named) > _NAMED_PER_LINE else "",
                    ", ".join(f"block {b} index {i} tx {tx}" for b, i, tx in part),
                )
        live = self.lanes.get(0)
        head = self.chain.head
        self.filter.rewound(fork.number)
        if live is not None and self.filter.id is not None and live.cursor is not None and head is not None:
            await self.filter.refill(live, live.cursor + 1, head)
        return HeadAnswer.NEW

    async def _check_fork(self, fork: int, fork_hash: str) -> None:
        """The block above the fork, asked again, must sit on the fork block as pinned.

        The headers the fork was found from may span a chain that moved while
        they were read (one call at a time, on a node without batches): the
        low ones from before, the high ones from after. Then the chains part
        lower, and the fork is looked for again on the next tick.
        """
        above = maybe_header(
            await self.client.call("eth_getBlockByNumber", [hex(fork + 1), False]), hex(fork + 1)
        )
        if above is not None and above.parent_hash != fork_hash:
            raise RpcProtocolError(
                f"the chain moved while the fork after block {fork} was being found; looking again",
                url=self.client.masked_url,
                method="eth_getBlockByNumber",
            )

    async def _hashes_at(self, fork: int, known: dict[int, str]) -> dict[int, str]:
        """The node's hashes at the heights above ``fork`` where yielded logs sit, beyond ``known``.

        Every yielded log above the fork whose block the node no longer has
        there is named in the reorg WARNING; the pinned heights alone miss
        most of them (a replaced chain keeps none). A height the node has no
        block at is left out: the log there is gone.
        """
        wanted = sorted(set().union(*(lane.heights_above(fork) for lane in self.lanes.values())) - set(known))
        if not wanted:
            return {}
        found = headers_by_number(wanted, await self.client.batch(header_calls(wanted)))
        return {n: h.hash for n, h in found.items() if h is not None}

    def _note_head(self) -> None:
        head = self.chain.head
        if head is not None:
            for lane in self.lanes.values():
                lane.note_head(head)

    async def _first_contact(self, latest: Header) -> dict[int, Header | None]:
        """Believe the first head only once the node shows the same block at that height again.

        Later heads are judged against the ones before them; the first has
        nothing to be judged against, and lanes start from it: a glitched
        first answer would put every cursor where the chain is not.
        """
        # The blocks below come in the same request: pinned at once, they let a
        # reorg right after the start find the blocks in common.
        numbers = list(range(latest.number, max(0, latest.number - _PINNED_AT_START) - 1, -1))
        answers = await self.client.batch(header_calls(numbers))
        refused = _refused(numbers, answers)
        if refused:
            log.info(
                "could not check blocks %s below the first head (%s); the blocks above them are pinned",
                refused,
                answers[numbers.index(refused[0])],
            )
        headers = headers_by_number(numbers, answers)
        again = headers.pop(latest.number)
        if again is None or again.hash != latest.hash:
            raise RpcProtocolError(
                f"the node's head answers disagree: block {latest.number} is {latest.hash}, then "
                f"{'missing' if again is None else again.hash}",
                url=self.client.masked_url,
                method="eth_getBlockByNumber",
            )
        return headers

    async def _read_head(self) -> int:
        """The latest block number, through the chain view (used outside the tick's batch)."""
        latest = header_of(await self.client.call("eth_getBlockByNumber", ["latest", False]), "latest")
        if self.chain.head is None:
            below = await self._first_contact(latest)
            self.chain.observe(latest, {})
            self.chain.pin_below(below)
            self._note_head()
        self._answered_head = latest.number if self._answered_head is None else self._answered_head
        return latest.number

    def _deliver(self, lane: Lane, logs: list[RawLog], *, asked: bool = True) -> list[RawLog]:
        """Deliver what the pinned chain vouches for; return the logs held above the head."""
        ready, held = triage(self.chain, logs, asked=asked)
        lane.deliver(ready)
        return held


class _HistoryGuard:
    """Keeps one watcher's history on the chain the hub pins (see ``read_history``)."""

    def __init__(self, hub: Hub, sub: Subscription) -> None:
        self._hub = hub
        self._sub = sub

    def end(self) -> int:
        end = self._sub.history_end
        return -1 if end is None else end

    async def on_chain(self, logs: list[RawLog], last: int) -> bool:
        """Asked after the chunk was read: a chain that moved before the read shows here.

        Block 0 tells a replaced chain at any depth; the chunk's last block
        and the blocks of its logs are checked where the hub pins a hash.
        """
        chain = self._hub.chain
        heights = {int(raw["blockNumber"], 16) for raw in logs if raw.get("blockHash") is not None}
        pinned = sorted(n for n in {last, *heights} if chain.pinned(n) is not None)
        numbers = sorted({0, last, *pinned})
        try:
            headers = headers_by_number(numbers, await self._hub.client.batch(header_calls(numbers)))
        except RpcError as exc:
            if classify(exc) is not Fault.TRANSIENT:
                raise
            log.info("%s: could not check a history chunk (%s); reading it again", self._sub.label, exc)
            return False
        end = headers[last]
        genesis = headers[0]
        if end is None or genesis is None or chain.genesis not in (None, genesis.hash):
            return False
        if any((h := headers[n]) is None or h.hash != chain.pinned(n) for n in pinned):
            return False
        return first_contradicted(chain, logs) is None

    async def settle(self) -> None:
        hub = self._hub
        reorgs, ticks = hub.reorgs, hub.ticks
        log.info(
            "%s: the chain moved under its history; reading on once the stream follows it", self._sub.label
        )
        while hub.reorgs == reorgs and hub.ticks < ticks + 3:
            if hub._error is not None:
                raise hub._error
            await asyncio.sleep(min(self._sub.poll_interval, 0.25))


def _quantity(value: Any, method: str) -> int:
    """A JSON-RPC hex quantity; anything else is a protocol fault (retried), not a crash."""
    try:
        return int(value, 16)
    except (TypeError, ValueError):
        raise RpcProtocolError(f"{method} answered {value!r}, not a hex quantity") from None


def _refused(numbers: Sequence[int], answers: Sequence[Any]) -> list[int]:
    """The block numbers whose header calls the node refused (an error, not null): said, and asked again."""
    return [n for n, a in zip(numbers, answers, strict=False) if isinstance(a, RpcResponseError)]


def _answer_may_be_lost(exc: RpcError) -> bool:
    if isinstance(exc, RpcTransportError):
        return exc.maybe_processed
    if isinstance(exc, RpcHttpError):
        return exc.status != 429  # a 429 is refused before the node does anything
    return True  # garbled body: the node may well have answered


_HUBS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_Key, Hub]] = weakref.WeakKeyDictionary()


def hub_for(urls: str | tuple[str, ...], nexus: str) -> Hub:
    """The hub of this event loop for ``(urls, nexus)``, created on first use.

    Keyed by the whole tuple, in order: the same URLs in another order of
    preference are another stream.
    """
    key = ((urls,) if isinstance(urls, str) else tuple(urls), nexus)
    registry = _HUBS.setdefault(asyncio.get_running_loop(), {})
    hub = registry.get(key)
    if hub is None:
        hub = registry[key] = Hub(key[0], nexus, registry)
    return hub


def hubs_at(url: str) -> list[Hub]:
    """Hubs following ``url`` among their URLs, on every event loop (``ogpu.events.testing`` stops them)."""
    return [hub for registry in list(_HUBS.values()) for hub in registry.values() if url in hub.urls]


def every_hub() -> list[Hub]:
    """Hubs of every event loop: ``ogpu.events.health()`` may be asked from any thread."""
    return [hub for registry in list(_HUBS.values()) for hub in list(registry.values())]


def active_hubs() -> list[Hub]:
    """Hubs of the running event loop (for tests and benchmarks)."""
    return list(_HUBS.get(asyncio.get_running_loop(), {}).values())
