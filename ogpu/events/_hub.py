"""The shared stream: one filter and one poll loop per (event loop, RPC URL, Nexus).

Every watcher in a process rides the same hub, so the node sees one
``eth_getFilterChanges`` (batched with ``eth_blockNumber``) per tick however
many watchers run. The hub owns fetching and recovery; lanes own delivery.

How each event arrives exactly once:

* The live lane (confirmations=0) reads a filter over every Nexus log. Its
  cursor moves to the head seen in the *previous* tick (or this tick's, if
  lower) after a successful poll: every log of a block the node had already
  reported must have been in some poll since, so that block is fully delivered.
* A lost filter, or a poll whose answer may have been lost in transit (the
  node consumed it), is a gap: the filter is recreated first, then
  ``eth_getLogs`` refills cursor+1..head, and the lane's memory of recent
  log identities drops whatever both paths return.
* A node without filters is followed with ``eth_getLogs`` over
  cursor+1..head every tick.
* A lane with confirmations=N reads ``eth_getLogs`` up to head-N only, then
  checks that each block it got logs from still has the same hash; if not,
  it reads the range again.
* A head that moves backwards is ignored: ranges end at the lower of the
  last two heads seen, and cursors never move back. A filter covers blocks
  mined after the node really created it, which a lagging head read at
  install can hide, so the first polls after each install also read up to
  the highest head seen with ``eth_getLogs``.
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
from ogpu.events._faults import Fault, Retrier, classify
from ogpu.events._lane import Lane, Subscription, chain_order, well_formed
from ogpu.events._ranges import LogRangeReader, ProgressCallback
from ogpu.events._rpc import RpcClient

__all__ = ["Hub", "active_hubs", "hub_for"]

log = logging.getLogger("ogpu.events")

# A filter that fails this many polls in a row is treated as lost.
_FILTER_FAILURES_BEFORE_RECREATE = 3
# Polls after a filter install that also read up to the highest head seen
# with eth_getLogs, in case the head seen at install lagged (see _cover_install_lag).
_INSTALL_CHECKS = 3
# How often a confirmed range is read again when its blocks keep changing.
_REORG_REREADS = 5
_TEARDOWN_TIMEOUT = 2.0


class Hub:
    """One shared, exactly-once stream of Nexus logs for one endpoint."""

    def __init__(self, url: str, nexus: str, registry: dict[tuple[str, str], Hub]) -> None:
        self.url = url
        self.nexus = nexus
        self.client = RpcClient(url)
        self.reader = LogRangeReader(self.client, nexus)
        self.lanes: dict[int, Lane] = {}
        self.head: int | None = None
        self.ticks = 0
        self._last_head: int | None = None
        self._filter_id: str | None = None
        self._stale_filters: list[str] = []
        self._filters_supported = True
        self._filter_failures = 0
        # After a filter install: (last block read from eth_getLogs, polls left
        # to check, highest block of a filter log set aside for eth_getLogs).
        self._install_cover: tuple[int, int, int] | None = None
        self._intervals: Counter[float] = Counter()
        self._wake = asyncio.Event()
        self._retrier = Retrier(lambda: self.client.ever_answered, self.client.masked_url)
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._registry = registry
        self._closed = False

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
                self._stale_filters.append(self._filter_id)
                self._filter_id = None
                self._install_cover = None
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
    ) -> AsyncGenerator[Any, None]:
        """Decoded past events of ``specs`` in ``first..last``, scoped like a watcher."""
        by_topic = {spec.topic0: spec for spec in specs}
        topics: list[object] = [list(by_topic)] if len(by_topic) > 1 else [next(iter(by_topic))]
        chunks = self.reader.read(first, last, topics=topics, progress=progress)
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
                        # gets here is a node without eth_blockNumber, which no retry helps.
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
        self._wake.clear()
        if seconds > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

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
        stale = self._stale_filters + ([self._filter_id] if self._filter_id else [])
        self._filter_id = None
        self._stale_filters = []
        try:
            for filter_id in stale:
                with contextlib.suppress(RpcError, asyncio.TimeoutError):
                    await asyncio.wait_for(
                        self.client.call("eth_uninstallFilter", [filter_id]), _TEARDOWN_TIMEOUT
                    )
        finally:
            await self.client.aclose()

    async def _tick(self) -> None:
        live = self.lanes.get(0)
        if live is not None and self._filters_supported and self._filter_id is None:
            await self._install_filter(live)
        polling = live is not None and self._filter_id is not None
        calls: list[tuple[str, list[Any]]] = [("eth_blockNumber", [])]
        if polling:
            calls.append(("eth_getFilterChanges", [self._filter_id]))
        head_before = self._last_head
        try:
            answers = await self.client.batch(calls)
        except RpcError as exc:
            if polling and _answer_may_be_lost(exc):
                self._lose_filter(f"the answer to eth_getFilterChanges was lost ({exc})")
            raise
        try:
            head = self._observe_head(answers[0])
        except RpcError as exc:
            if polling and not isinstance(answers[1], BaseException):
                # The node has handed over (and forgotten) the filter's changes,
                # but without this tick's head they cannot be put in place: a gap.
                self._lose_filter(f"eth_blockNumber failed beside it ({exc})")
            raise
        if polling and self.lanes.get(0) is not live:
            # Its watchers left while the poll was out, and unsubscribe dropped
            # the filter: what it returned belongs to no one.
            polling, live = False, self.lanes.get(0)

        if polling and live is not None:
            changes = answers[1]
            if isinstance(changes, list):
                changes = [raw for raw in changes if not isinstance(raw, dict) or well_formed(raw)]
            if self._install_cover is not None and not isinstance(changes, BaseException):
                changes = await self._cover_install_lag(live, changes if isinstance(changes, list) else [])
            # Not past this tick's head either: a head reported by a backend ahead of
            # the filter's would otherwise move the cursor over blocks it has not seen.
            done = None if head_before is None else min(head_before, head)
            self._take_filter_changes(live, changes, done)
        elif live is not None and not self._filters_supported:
            await self._follow_by_ranges(live, head, verify=False)
        for depth, lane in list(self.lanes.items()):
            if depth > 0:
                await self._follow_by_ranges(lane, head - depth, verify=True)
        await self._uninstall_stale_filters()

    def _observe_head(self, answer: Any) -> int:
        if isinstance(answer, BaseException):
            raise answer
        seen = _quantity(answer, "eth_blockNumber")
        previous = self._last_head
        self._last_head = seen
        if self.head is not None and seen < self.head:
            log.info(
                "node reported head %d after %d (a lagging backend?); cursors stay where they are",
                seen,
                self.head,
            )
        self.head = seen if self.head is None else max(self.head, seen)
        # Ranges end at the lower of the last two heads: a load-balanced node
        # may report a head that another of its backends has not reached.
        return seen if previous is None else min(previous, seen)

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
                head = _quantity(await self.client.call("eth_blockNumber"), "eth_blockNumber")
                self._last_head = self.head = head
                live.start(head, head)
            return
        filter_id = str(created)
        try:
            head = _quantity(await self.client.call("eth_blockNumber"), "eth_blockNumber")
            self._last_head = head
            self.head = head if self.head is None else max(self.head, head)
            if live.cursor is None:
                live.start(head, head)
            elif head > live.cursor:
                log.info(
                    "filter %s installed; refilling blocks %d..%d from eth_getLogs",
                    filter_id,
                    live.cursor + 1,
                    head,
                )
                async for end, logs in self.reader.read(live.cursor + 1, head):
                    live.deliver(logs)
                    live.advance(end)
        except BaseException:
            # Polling this filter now would move the cursor past what the
            # refill did not reach: drop it, the next tick starts over.
            self._stale_filters.append(filter_id)
            raise
        if self.lanes.get(0) is not live:
            # Its watchers left while it was being created: a later live lane
            # starts afresh with a filter of its own.
            self._stale_filters.append(filter_id)
            return
        self._filter_id = filter_id
        self._filter_failures = 0
        # Checked on every install, not only once a head was seen lagging:
        # the first install can meet a lagging backend too. It costs an
        # eth_getLogs on the first polls after an install, never in steady state.
        # Blocks the previous filter reported beyond every head seen (its logs
        # consumed, not delivered) stay owed, so checking goes on until they are read.
        owed = self._install_cover[2] if self._install_cover is not None else head
        self._install_cover = (head, _INSTALL_CHECKS, max(head, owed))

    async def _cover_install_lag(self, live: Lane, changes: list[Any]) -> list[Any]:
        """Read up to the highest head seen with eth_getLogs; return the changes to deliver.

        The filter covers blocks mined after it was created. A lagging
        backend may have reported a head below the real one at that moment,
        and the blocks in between would be in neither the refill nor the
        filter. Heads read after the filter existed are at or above where it
        starts unless they lag too, so the first polls after an install read
        up to the highest head seen, before the filter's logs are delivered.
        Filter logs above that head are set aside (eth_getLogs reads them in
        a later poll), so nothing newer is delivered before something older;
        checking ends once eth_getLogs has caught up with all of them.
        """
        assert self._install_cover is not None and live.cursor is not None
        covered, checks, needed = self._install_cover
        reported = [int(raw["blockNumber"], 16) for raw in changes if isinstance(raw, dict)]
        # Recorded before reading: if the read fails, these changes are consumed
        # and not delivered, and the next filter's checks must still reach them.
        needed = max([needed, *reported])
        self._install_cover = (covered, checks, needed)
        first, last = max(covered, live.cursor) + 1, max(covered, self.head or covered)
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
                    live.deliver(logs)
                    live.advance(end)
            except Exception:
                # The filter's answer in hand is consumed and not delivered: a gap.
                self._lose_filter(f"blocks {first}..{last} could not be read before its changes")
                raise
        ahead = [raw for raw in changes if isinstance(raw, dict) and int(raw["blockNumber"], 16) > last]
        if checks > 1 or needed > last:
            self._install_cover = (last, checks - 1, needed)
            return [raw for raw in changes if raw not in ahead]
        self._install_cover = None
        return changes

    def _take_filter_changes(self, live: Lane, answer: Any, done: int | None) -> None:
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
        self._filter_failures = 0
        logs = answer if isinstance(answer, list) else []
        # Filters over logs return log objects; anything else (block hashes
        # from a misbehaving proxy) carries no events.
        live.deliver([raw for raw in logs if isinstance(raw, dict)])
        if done is not None:
            live.advance(done)

    def _lose_filter(self, why: str) -> None:
        if self._filter_id is None:
            return  # already dropped: its live lane emptied while a call was out
        live = self.lanes.get(0)
        cursor = live.cursor if live is not None else None
        log.warning(
            "filter %s dropped: %s; will recreate it and refill from block %s",
            self._filter_id,
            why,
            None if cursor is None else cursor + 1,
        )
        self._stale_filters.append(self._filter_id)
        self._filter_id = None

    async def _uninstall_stale_filters(self) -> None:
        while self._stale_filters:
            filter_id = self._stale_filters[-1]
            with contextlib.suppress(RpcError):
                await self.client.call("eth_uninstallFilter", [filter_id])
            # Taken off the list only now: if the stream is closed during the
            # call, the teardown still uninstalls it.
            self._stale_filters.remove(filter_id)

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
            lane.deliver(logs)
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
