"""The shared stream: one filter and one poll loop per (event loop, RPC URL, Nexus).

Every watcher in a process rides the same hub, so the node sees one HTTP
request per tick however many watchers run: a JSON-RPC batch of the latest
block header, the header of the last block the stream believed (its anchor),
and ``eth_getFilterChanges``. The hub moves bytes and applies decisions; what
an answer means is decided without I/O in ``_chain`` (heads and hashes) and
``_screen`` (logs), and lanes own delivery.

How each event arrives exactly once:

* The chain is pinned by hash (``_chain.ChainView``). When a pinned block
  changes, the headers of every pinned number are read in one batch, the
  fork point is found, every lane goes back to it and reads the new branch
  again; logs already delivered are recognised by (block hash, log index),
  and those that left the chain are named in a WARNING. A chain with no
  block in common (a development node restarted on the same port) is
  followed from where they part, or its first block; a changed
  ``eth_chainId`` raises ``ChainChangedError``.
* The live lane (confirmations=0) reads a filter over every Nexus log. Its
  cursor moves to the head believed in the *previous* tick (or this tick's,
  if lower) after a successful poll: every log of a block the node had
  already reported must have been in some poll since.
* A lost filter (an error, or an answer that is not a list), or a poll whose
  answer may have been lost in transit, is a gap: the filter is recreated,
  then ``eth_getLogs`` refills from a few blocks below the cursor (a backend
  ahead of the filter's may have moved it) up to the head.
* A filter covers blocks mined after the node really created it, which a
  lagging head read at install can hide, so after each install ``eth_getLogs``
  also reads up to the believed head until it has read past the install head.
* A node without filters is followed with ``eth_getLogs`` every tick.
* A lane with confirmations=N reads ``eth_getLogs`` up to head-N only, then
  checks that each block it got logs from still has the same hash.
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
    LogDecodeError,
    OGPUError,
    RpcError,
    RpcHttpError,
    RpcProtocolError,
    RpcResponseError,
    RpcTransportError,
    UnsupportedNodeError,
)
from ogpu.events._abi import EventSpec, RawLog
from ogpu.events._chain import SPIKE, ChainView, Header, LogPlace, Seen, parse_header
from ogpu.events._faults import Backoff, Fault, Retrier, classify
from ogpu.events._lane import Lane, Subscription
from ogpu.events._ranges import LogRangeReader, ProgressCallback
from ogpu.events._rpc import Call, RpcClient
from ogpu.events._screen import chain_order, filter_changes

__all__ = ["Hub", "active_hubs", "hub_for"]

log = logging.getLogger("ogpu.events")

# A filter that fails this many polls in a row is treated as lost.
_FILTER_FAILURES_BEFORE_RECREATE = 3
# Polls after a filter install that also read up to the believed head with
# eth_getLogs, at least; see _cover_install_lag.
_INSTALL_CHECKS = 3
# A refill after a lost filter starts this many blocks below the cursor: the
# cursor may have followed heads from a backend ahead of the filter's.
_REFILL_MARGIN = 16
# How often a confirmed range is read again when its blocks keep changing.
_REORG_REREADS = 5
# eth_uninstallFilter tries before a filter is left to the node's idle expiry.
_UNINSTALL_TRIES = 4
_TEARDOWN_TIMEOUT = 2.0


class Hub:
    """One shared, exactly-once stream of Nexus logs for one endpoint."""

    def __init__(self, url: str, nexus: str, registry: dict[tuple[str, str], Hub]) -> None:
        self.url = url
        self.nexus = nexus
        self._address = nexus.lower()
        self.client = RpcClient(url)
        self.reader = LogRangeReader(self.client, nexus)
        self.chain = ChainView()
        self.lanes: dict[int, Lane] = {}
        self.ticks = 0
        self._last_answer: int | None = None
        self._filter_id: str | None = None
        # filter id -> (failed uninstall tries, tick of the next try)
        self._stale_filters: dict[str, tuple[int, int]] = {}
        self._filters_supported = True
        self._filter_failures = 0
        # After a filter install: (last block read from eth_getLogs, polls left
        # to check, the block eth_getLogs must reach before checking ends).
        self._install_cover: tuple[int, int, int] | None = None
        # Filter logs above the believed head, delivered once a head reaches them.
        self._held: list[RawLog] = []
        self._intervals: Counter[float] = Counter()
        self._wake = asyncio.Event()
        self._retrier = Retrier(lambda: self.client.ever_answered, self.client.masked_url)
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._registry = registry
        self._closed = False

    @property
    def head(self) -> int | None:
        """The highest head the stream believes (glitched answers are not believed)."""
        return self.chain.head

    @property
    def subscriber_count(self) -> int:
        return sum(lane.size for lane in self.lanes.values())

    @property
    def filter_id(self) -> str | None:
        return self._filter_id

    @property
    def steady(self) -> bool:
        """The filter is installed and the polls right after its install (which
        also read eth_getLogs) are done: from here a tick is one HTTP request."""
        return self._filter_id is not None and self._install_cover is None

    # --- joining and leaving ---

    async def subscribe(self, sub: Subscription) -> None:
        """Add ``sub`` and wait until its lane knows where it starts."""
        if self._error is not None:
            raise self._error
        lane = self.lanes.get(sub.confirmations)
        if lane is None:
            lane = self.lanes[sub.confirmations] = Lane(sub.confirmations)
            self._wake.set()
        sub.join_head = self.head
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
            if sub.confirmations == 0 and self._filter_id is not None:
                # A later live lane starts from a new head and needs a filter
                # created after it; this one is uninstalled on the next tick.
                self._stale_filters[self._filter_id] = (0, 0)
                self._filter_id = None
                self._install_cover = None
                self._held = []
        if not self.lanes:
            await self.close()

    async def close(self) -> None:
        """Stop polling, uninstall the filter, close the HTTP client."""
        if self._closed:
            return
        self._closed = True
        if self._registry.get((self.url, self.nexus)) is self:
            del self._registry[(self.url, self.nexus)]
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            # Not ``await task``: a caller cancelled meanwhile would cancel the
            # teardown too (leaving the filter installed), and suppressing the
            # task's CancelledError would swallow the caller's own.
            await asyncio.wait([task])
        elif task is None:
            await self.client.aclose()

    # --- history for one watcher ---

    async def history(
        self,
        specs: Sequence[EventSpec],
        field: str | None,
        scope: str | None,
        first: int,
        last: int,
        progress: ProgressCallback | None = None,
        confirmations: int = 0,
    ) -> AsyncGenerator[Any, None]:
        """Decoded past events of ``specs`` in ``first..last``, scoped like a watcher."""
        by_topic = {spec.topic0: spec for spec in specs}
        topics: list[object] = [list(by_topic)] if len(by_topic) > 1 else [next(iter(by_topic))]
        chunks = self.reader.read(first, last, topics=topics, progress=progress)
        yielded: set[tuple[str, int]] = set()
        async with contextlib.aclosing(chunks):
            while True:
                try:
                    _, logs = await anext(chunks)
                except StopAsyncIteration:
                    return
                except Exception:
                    # The shared stream failed meanwhile (and closed the client the
                    # reader uses): its typed error is the one to report.
                    if self._error is not None:
                        raise self._error from None
                    raise
                logs.sort(key=chain_order)
                for raw in logs:
                    if raw.get("removed") or raw.get("blockHash") is None:
                        continue
                    # A node that answers a chunk with logs of other chunks must
                    # not make one event come out twice.
                    key = (raw["blockHash"].lower(), int(raw["logIndex"], 16))
                    if key in yielded:
                        continue
                    yielded.add(key)
                    lane = self.lanes.get(confirmations)
                    if lane is not None:
                        # So a reorg that takes it off the chain can name it.
                        lane.remember(raw)
                    spec = by_topic.get(raw["topics"][0].lower()) if raw.get("topics") else None
                    if spec is None:
                        continue
                    if field is not None and spec.scope_hex(raw, field) != scope:
                        continue
                    try:
                        event = spec.decode(raw)
                    except LogDecodeError as exc:  # logged and skipped, as the live path does
                        log.warning("skipping a log that does not decode: %s", exc)
                        continue
                    yield event

    # --- the poll loop ---

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.lanes:
                started = loop.time()
                try:
                    await self._tick()
                except Exception as exc:
                    fault = classify(exc)
                    if fault is Fault.FATAL:
                        raise
                    if fault is Fault.UNSUPPORTED:
                        # Filters and eth_getLogs are handled where they are called; what
                        # gets here is a node without block headers, which no retry helps.
                        raise UnsupportedNodeError(
                            f"node cannot report its head: {exc}", url=self.client.masked_url
                        ) from exc
                    await self._retrier.pause(exc, "polling the Nexus stream")
                    continue
                self._retrier.succeeded()
                self.ticks += 1
                await self._sleep(min(self._intervals, default=0.0) - (loop.time() - started))
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

    async def _sleep(self, seconds: float) -> None:
        # The wake-up is cleared when a tick starts, not here: one set while
        # the tick ran (a new lane, a faster watcher) cuts this sleep short.
        if seconds > 0 and not self._wake.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)

    def _fail_everyone(self, exc: BaseException) -> None:
        self._error = exc
        if self._registry.get((self.url, self.nexus)) is self:
            del self._registry[(self.url, self.nexus)]
        for lane in self.lanes.values():
            for sub in lane.subscriptions():
                sub.fail(exc)
            lane.ready.set()

    async def _teardown(self) -> None:
        self._closed = True
        stale = list(self._stale_filters) + ([self._filter_id] if self._filter_id else [])
        self._filter_id = None
        self._stale_filters = {}
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._uninstall_all(stale), _TEARDOWN_TIMEOUT)
        finally:
            await self.client.aclose()

    async def _uninstall_all(self, filter_ids: list[str]) -> None:
        """Teardown: each filter tried a few times, quickly, inside the teardown's time box."""
        backoff = Backoff(base=0.05, cap=0.4)
        for filter_id in filter_ids:
            for attempt in range(1, _UNINSTALL_TRIES + 1):
                try:
                    await self.client.call("eth_uninstallFilter", [filter_id])
                    break
                except RpcError as exc:
                    if attempt == _UNINSTALL_TRIES:
                        log.warning("could not uninstall filter %s (%s); the node expires it", filter_id, exc)
                        break
                    await asyncio.sleep(backoff.next_delay(exc))

    async def _tick(self) -> None:
        self._wake.clear()
        live = self.lanes.get(0)
        if live is not None and self._filters_supported and self._filter_id is None:
            await self._install_filter(live)
        polling = live is not None and self._filter_id is not None
        checks = self.chain.checks()
        calls: list[Call] = [("eth_getBlockByNumber", ["latest", False])]
        calls += [("eth_getBlockByNumber", [hex(n), False]) for n in checks]
        if self.chain.chain_id is None:
            calls.append(("eth_chainId", []))
        if polling:
            calls.append(("eth_getFilterChanges", [self._filter_id]))
        try:
            answers = await self.client.batch(calls)
        except RpcError as exc:
            if polling and _answer_may_be_lost(exc):
                self._lose_filter(f"the answer to eth_getFilterChanges was lost ({exc})")
            raise
        changes = answers.pop() if polling else None
        try:
            latest = _header(answers[0], "latest")
            checked = {n: _maybe_header(a, hex(n)) for n, a in zip(checks, answers[1:], strict=False)}
            if self.chain.chain_id is None and not isinstance(answers[-1], BaseException):
                self.chain.chain_id = _quantity(answers[-1], "eth_chainId")
            seen = self.chain.observe(latest, checked)
            if seen is Seen.DIVERGED:
                await self._reconcile(latest)
        except Exception as exc:
            if polling and not isinstance(changes, BaseException) and self._filter_id is not None:
                # The node has handed over (and forgotten) the filter's changes,
                # but without a head they can be trusted against, they cannot
                # be put in place: a gap.
                self._lose_filter(f"the head beside it could not be used ({exc})")
            raise
        if seen is Seen.HELD:
            log.warning(
                "node reported head %d, far above the %s believed so far; not believed until confirmed",
                latest.number,
                self.chain.head,
            )
        head = self.chain.head
        assert head is not None
        # Ranges end at the lower of the last two answers: a load-balanced node
        # may report a head that the backend holding the filter has not reached.
        answer = latest.number if seen in (Seen.NEW, Seen.SAME, Seen.BEHIND) else head
        previous, self._last_answer = self._last_answer, min(answer, head)
        if polling and self.lanes.get(0) is not live:
            # Its watchers left while the poll was out, and unsubscribe dropped
            # the filter: what it returned belongs to no one.
            polling, live = False, self.lanes.get(0)

        if polling and live is not None:
            done = None if previous is None else min(previous, self._last_answer)
            await self._take_filter_changes(live, changes, done)
        elif live is not None and not self._filters_supported:
            await self._follow_by_ranges(live, self._last_answer, verify=False)
        for depth, lane in list(self.lanes.items()):
            if depth > 0:
                await self._follow_by_ranges(lane, head - depth, verify=True)
        await self._uninstall_stale_filters()

    async def _reconcile(self, latest: Header) -> None:
        """A pinned block changed: find where the chains part and read the new branch."""
        numbers = self.chain.fork_queries()
        calls: list[Call] = [("eth_getBlockByNumber", [hex(n), False]) for n in numbers]
        answers = await self.client.batch([*calls, ("eth_chainId", [])])
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
        headers = {n: _maybe_header(a, hex(n)) for n, a in zip(numbers, answers, strict=True)}
        fork = self.chain.locate_fork(headers)
        if fork.lagging:
            log.info("node answered from a backend behind block %s; nothing moves", self.chain.head)
            return
        old_head = self.chain.head
        self.chain.rebase(fork, headers, latest)
        canonical = {n: h.hash for n, h in headers.items() if h is not None}
        gone: list[tuple[int, int, str]] = []
        for lane in self.lanes.values():
            gone.extend(lane.rewind(fork.number, canonical))
        self._last_answer = min(self._last_answer or 0, max(fork.number, 0))
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
            listed = ", ".join(f"block {b} index {i} tx {tx}" for b, i, tx in sorted(set(gone))[:10])
            log.warning(
                "reorg at block %d: %d logs already yielded left the chain: %s",
                fork.number + 1,
                len(set(gone)),
                listed,
            )
        live = self.lanes.get(0)
        if live is not None and self._filter_id is not None and live.cursor is not None:
            await self._refill(live, live.cursor + 1, latest.number)

    async def _install_filter(self, live: Lane) -> None:
        # The filter is created before the head is read, so every block after
        # that head is covered by the filter and everything up to it by the
        # refill below; the overlap is dropped by the lane's log memory.
        try:
            created = await self.client.call("eth_newFilter", [{"address": self.nexus}])
        except RpcResponseError as exc:
            if classify(exc) not in (Fault.UNSUPPORTED, Fault.FILTER_LOST):
                raise
            log.info(
                "node at %s offers no log filters (%s); following with eth_getLogs each tick",
                self.client.masked_url,
                exc,
            )
            self._filters_supported = False
            if live.cursor is None:
                head = await self._read_head()
                live.start(head, head)
            return
        filter_id = str(created)
        try:
            seen_at_install = await self._read_head()
            head = seen_at_install if self.chain.head is None else min(seen_at_install, self.chain.head)
            if live.cursor is None:
                live.start(head, head)
            elif head > live.cursor:
                await self._refill(live, max(0, live.cursor + 1 - _REFILL_MARGIN), head, filter_id)
        except BaseException:
            # Polling this filter now would move the cursor past what the
            # refill did not reach: drop it, the next tick starts over.
            self._stale_filters[filter_id] = (0, 0)
            raise
        if self.lanes.get(0) is not live:
            # Its watchers left while it was being created: a later live lane
            # starts afresh with a filter of its own.
            self._stale_filters[filter_id] = (0, 0)
            return
        self._filter_id = filter_id
        self._filter_failures = 0
        # Checked on every install: the head read at install may lag the block
        # where the node really created the filter, by a backend or a block
        # mined in between, so eth_getLogs reads on until it is past that head.
        # Blocks the previous filter reported beyond every head seen (consumed,
        # not delivered) stay owed, so checking goes on until they are read.
        owed = self._install_cover[2] if self._install_cover is not None else 0
        trusted = seen_at_install if seen_at_install <= head + SPIKE else head
        self._install_cover = (head, _INSTALL_CHECKS, max(trusted + 1, owed))

    async def _read_head(self) -> int:
        """The latest block number, through the chain view (used outside the tick's batch)."""
        latest = _header(await self.client.call("eth_getBlockByNumber", ["latest", False]), "latest")
        if self.chain.tip is None:
            self.chain.observe(latest, {})
        self._last_answer = latest.number if self._last_answer is None else self._last_answer
        return latest.number

    async def _refill(self, live: Lane, first: int, last: int, filter_id: str | None = None) -> None:
        log.info(
            "filter %s: refilling blocks %d..%d from eth_getLogs", filter_id or self._filter_id, first, last
        )
        async for end, logs in self.reader.read(first, last):
            self._deliver(live, logs)
            live.advance(end)

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
        assert self._install_cover is not None and live.cursor is not None
        covered, checks, needed = self._install_cover
        head = self.chain.head if self.chain.head is not None else covered
        reported = [
            int(raw["blockNumber"], 16) for raw in changes if int(raw["blockNumber"], 16) <= head + SPIKE
        ]
        # Recorded before reading: if the read fails, these changes are consumed
        # and not delivered, and the next filter's checks must still reach them.
        needed = max([needed, *reported])
        self._install_cover = (covered, checks, needed)
        first, last = max(covered, live.cursor) + 1, max(covered, head)
        if last >= first:
            log.info(
                "filter %s: reading blocks %d..%d from eth_getLogs "
                "(the head seen at install may have lagged)",
                self._filter_id,
                first,
                last,
            )
            try:
                async for end, logs in self.reader.read(first, last):
                    self._deliver(live, logs)
                    live.advance(end)
            except Exception:
                # The filter's answer in hand is consumed and not delivered: a gap.
                self._lose_filter(f"blocks {first}..{last} could not be read before its changes")
                raise
        if checks > 1 or needed > last:
            self._install_cover = (last, checks - 1, needed)
            # Logs far beyond every head stay in, for _deliver to drop with a WARNING.
            return [raw for raw in changes if not last < int(raw["blockNumber"], 16) <= head + SPIKE]
        self._install_cover = None
        return changes

    async def _take_filter_changes(self, live: Lane, answer: Any, done: int | None) -> None:
        if isinstance(answer, RpcResponseError):
            fault = classify(answer)
            if fault is Fault.FILTER_LOST:
                self._lose_filter(f"the node no longer knows it ({answer})")
                return
            if fault is Fault.UNSUPPORTED:
                log.info("node rejects eth_getFilterChanges (%s); switching to eth_getLogs", answer)
                self._filters_supported = False
                self._lose_filter("filters are not supported")
                return
            self._filter_failures += 1
            if self._filter_failures >= _FILTER_FAILURES_BEFORE_RECREATE:
                self._lose_filter(f"{self._filter_failures} polls in a row failed ({answer})")
                return
            raise answer
        if isinstance(answer, BaseException):
            raise answer
        logs = filter_changes(answer, self._address)
        if logs is None:
            self._lose_filter(f"the node answered {answer!r:.40} instead of its changes")
            return
        self._filter_failures = 0
        if self._install_cover is not None:
            logs = await self._cover_install_lag(live, logs)
        held, self._held = self._held, []
        self._held = self._deliver(live, logs + held, asked=False)
        if done is not None:
            live.advance(done)

    def _deliver(self, lane: Lane, logs: list[RawLog], *, asked: bool = True) -> list[RawLog]:
        """Deliver what the pinned chain vouches for; return what is above the head; drop what it contradicts.

        ``asked``: the logs answer a range the stream asked for, which ends at
        or below a head it believed, so none is held back.
        """
        ready: list[RawLog] = []
        held: list[RawLog] = []
        for raw in logs:
            block_hash = raw.get("blockHash")
            if raw.get("removed") or block_hash is None:
                ready.append(raw)  # the lane warns about removals and skips pending logs
                continue
            place = self.chain.place(int(raw["blockNumber"], 16), block_hash)
            if place is LogPlace.OK:
                ready.append(raw)
            elif place is LogPlace.AHEAD:
                (ready if asked else held).append(raw)
            elif place is LogPlace.BEYOND:
                log.warning(
                    "dropped a log of block %d: no head has shown it (believed head %s)",
                    int(raw["blockNumber"], 16),
                    self.chain.head,
                )
            else:
                log.warning(
                    "dropped a log of block %d with hash %s: that block is %s on the chain the stream "
                    "follows (it is read again if a reorg brings it back)",
                    int(raw["blockNumber"], 16),
                    block_hash,
                    self.chain.pinned(int(raw["blockNumber"], 16)),
                )
        lane.deliver(ready)
        return held

    def _lose_filter(self, why: str) -> None:
        if self._filter_id is None:
            return  # already dropped: its live lane emptied while a call was out
        live = self.lanes.get(0)
        cursor = live.cursor if live is not None else None
        log.warning(
            "filter %s dropped: %s; will recreate it and refill from block %s",
            self._filter_id,
            why,
            None if cursor is None else max(0, cursor + 1 - _REFILL_MARGIN),
        )
        self._stale_filters[self._filter_id] = (0, 0)
        self._filter_id = None

    async def _uninstall_stale_filters(self) -> None:
        """One try per due filter per tick, backing off by ticks; the poll itself is never held up."""
        for filter_id, (tries, due) in list(self._stale_filters.items()):
            if due > self.ticks:
                continue
            try:
                await self.client.call("eth_uninstallFilter", [filter_id])
            except RpcError as exc:
                tries += 1
                if tries >= _UNINSTALL_TRIES:
                    log.warning(
                        "could not uninstall filter %s after %d tries (%s); the node expires it",
                        filter_id,
                        tries,
                        exc,
                    )
                    self._stale_filters.pop(filter_id, None)
                else:
                    log.warning("eth_uninstallFilter %s failed (%s); will try again", filter_id, exc)
                    self._stale_filters[filter_id] = (tries, self.ticks + 2**tries)
                continue
            # Taken off the list only now: if the stream is closed during the
            # call, the teardown still uninstalls it.
            self._stale_filters.pop(filter_id, None)

    async def _follow_by_ranges(self, lane: Lane, target: int, *, verify: bool) -> None:
        if lane.cursor is None:
            lane.start(max(target, 0), self.head if self.head is not None else target)
            return
        if target <= lane.cursor:
            return
        first = lane.cursor + 1
        async for end, logs in self.reader.read(first, target):
            if verify:
                logs = await self._canonical(logs, first, end)
            self._deliver(lane, logs)
            lane.advance(end)
            first = end + 1

    async def _canonical(self, logs: list[RawLog], first: int, last: int) -> list[RawLog]:
        """``logs`` if every block they come from still has the same hash, else a re-read."""
        for _ in range(_REORG_REREADS):
            hashes: dict[str, set[str]] = {}
            for raw in logs:
                if raw.get("blockHash") is not None and not raw.get("removed"):
                    hashes.setdefault(raw["blockNumber"], set()).add(raw["blockHash"].lower())
            if not hashes:
                return logs
            numbers = sorted(hashes, key=lambda n: int(n, 16))
            answers = await self.client.batch(
                [("eth_getBlockByNumber", [number, False]) for number in numbers]
            )
            changed = [
                int(number, 16)
                for number, block in zip(numbers, answers, strict=True)
                if not isinstance(block, dict) or {str(block.get("hash", "")).lower()} != hashes[number]
            ]
            if not changed:
                return logs
            log.warning(
                "blocks %s changed since their logs were read (reorg); reading %d..%d again",
                changed,
                first,
                last,
            )
            logs = [raw async for _, chunk in self.reader.read(first, last) for raw in chunk]
        raise RpcError(
            f"blocks {first}..{last} kept changing while being confirmed",
            url=self.client.masked_url,
        )


def _header(answer: Any, which: str) -> Header:
    """The header the node gave for ``which``; a missing or failed answer is raised."""
    if isinstance(answer, BaseException):
        raise answer
    header = parse_header(answer, f"eth_getBlockByNumber({which})")
    if header is None:
        raise RpcProtocolError(f"eth_getBlockByNumber({which}) answered null")
    return header


def _maybe_header(answer: Any, which: str) -> Header | None:
    """A header, or ``None`` where the node does not have (or will not give) that block."""
    if isinstance(answer, RpcResponseError):
        return None  # some nodes answer "header not found" instead of null
    if isinstance(answer, BaseException):
        raise answer
    return parse_header(answer, f"eth_getBlockByNumber({which})")


def _quantity(value: Any, method: str) -> int:
    """A JSON-RPC hex quantity; anything else is a protocol fault (retried), not a crash."""
    try:
        return int(value, 16)
    except (TypeError, ValueError):
        raise RpcProtocolError(f"{method} answered {value!r}, not a hex quantity") from None


def _answer_may_be_lost(exc: RpcError) -> bool:
    if isinstance(exc, RpcTransportError):
        return exc.maybe_processed
    if isinstance(exc, RpcHttpError):
        return exc.status != 429  # a 429 is refused before the node does anything
    return True  # garbled body: the node may well have answered


_HUBS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], Hub]] = (
    weakref.WeakKeyDictionary()
)


def hub_for(url: str, nexus: str) -> Hub:
    """The hub of this event loop for ``(url, nexus)``, created on first use."""
    registry = _HUBS.setdefault(asyncio.get_running_loop(), {})
    hub = registry.get((url, nexus))
    if hub is None:
        hub = registry[(url, nexus)] = Hub(url, nexus, registry)
    return hub


def active_hubs() -> list[Hub]:
    """Hubs of the running event loop (for tests and benchmarks)."""
    return list(_HUBS.get(asyncio.get_running_loop(), {}).values())
