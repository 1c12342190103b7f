"""``eth_getLogs`` over block ranges, in chunks that adapt to the provider.

Providers cap ranges and result counts in ways they rarely document, so the
chunk size is learned, once per reader, and then kept to:

* a block cap the refusal names ("query exceeds max block range 500",
  "max is 1k blocks") is the chunk size from then on: one refusal in all;
* a block cap it does not name ("block range too large") is searched for:
  halving until a size is taken, then bisecting between the largest size
  taken and the smallest refused, about log2 of the first size in refusals,
  and the largest size taken is kept from then on;
* a results cap ("more than 10000 results", with or without the range the
  provider suggests) depends on how dense the logs are, so it sets no block
  cap: the retry takes the suggested range (or half), and later chunks are
  sized from the last one's density to hold about half the stated number.

A refusal is said once per reader, at INFO: it is the provider's policy,
not a fault, and a reader that keeps to it is not refused again.

Reading ahead (:meth:`LogRangeReader.read_ahead`, not yet used by history): the request for
the next chunk is in flight while the caller decodes and delivers the one
it holds, so the node works while Python does. The bound keeps a slow
consumer from piling answers up: one chunk ahead, each aimed at about
``CHUNK_LOGS`` logs (never less than one block).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, Callable, Sequence

from ogpu._errors import RpcProtocolError, RpcResponseError, UnsupportedNodeError
from ogpu.events._codec.abi import RawLog
from ogpu.events._net.faults import Fault, Retrier, classify, describe, suggested_span
from ogpu.events._net.rpc import JsonRpc
from ogpu.events._stream.screen import logs_in_range

__all__ = ["CHUNK_LOGS", "READ_AHEAD_CHUNKS", "LogRangeReader", "ProgressCallback"]

log = logging.getLogger("ogpu.events")

# (first block, last block scanned so far, last block) after every chunk.
ProgressCallback = Callable[[int, int, int], None]

INITIAL_SPAN = 2_000
MAX_SPAN = 100_000
# Successes in a row before a size refused for its results (which depends on
# how dense the logs were) is tried again. Block caps are never retried.
_RETRY_CEILING_AFTER = 20
# A search for an unnamed block cap stops once the sizes refused and taken are
# this close (a fraction of the size taken): a few percent more blocks per
# request are not worth another refusal.
_CLOSE_ENOUGH = 8
# Refusals that depend on the logs in the range rather than on its length.
_RESULTS_REFUSAL = re.compile(r"result|\blogs?\b|response size|timeout|timed out", re.IGNORECASE)
# The results cap a refusal names: "more than 10000 results", "a cap of 10K logs".
_RESULTS_LIMIT = re.compile(r"(\d+)\s*([kK])?\s*(?:results|logs)\b", re.IGNORECASE)
# Chunks fetched, or being fetched, beyond the one the caller of read_ahead holds.
READ_AHEAD_CHUNKS = 1
# What a chunk read ahead aims at, in logs: big enough that a request's own
# cost is small beside its logs', small enough to bound what waits in memory.
CHUNK_LOGS = 5_000
# The first chunk read ahead, in blocks: how dense the range is is not known
# yet, and a first answer holding the whole range would leave nothing to overlap.
_FIRST_AHEAD_SPAN = 4

Chunk = tuple[int, list[RawLog]]


class LogRangeReader:
    """Reads the Nexus logs of a block range, chunk by chunk, in chain order.

    One reader per endpoint: what it learns about the provider's limits is
    shared by every range it reads.
    """

    def __init__(self, client: JsonRpc, address: str) -> None:
        self._client = client
        self._address = address.lower()
        self.span = INITIAL_SPAN
        # Above this the provider refuses ranges for their length: named by
        # the provider, or found by the search below. Never raised again.
        self.block_cap: int | None = None
        # The search for an unnamed block cap: the largest size taken and
        # the smallest refused (None: none refused for its length yet).
        self._taken = 0
        self._refused: int | None = None
        # A size refused for its results: avoided until enough successes.
        self._ceiling = MAX_SPAN
        self._streak = 0
        # The results cap a provider named, in logs: chunks aim at half of it.
        self.results_cap: int | None = None
        # Requests the provider refused for their range or results: what the
        # learning costs (read by tests and benchmarks).
        self.refusals = 0
        self._told = False

    async def read(
        self,
        first: int,
        last: int,
        *,
        topics: Sequence[object] | None = None,
        progress: ProgressCallback | None = None,
        chunk_logs: int | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        """Yield ``(chunk_last_block, logs)`` for ``first..last`` inclusive, in order.

        Transient faults are retried here with backoff; a range error shrinks
        the chunk and tries again from the same block, so nothing is skipped.
        ``chunk_logs``: size each chunk from the last one's density to hold
        about that many logs (within what the provider allows).
        """
        retrier = Retrier(lambda: self._client.ever_answered, self._client.masked_url)
        sized = None if chunk_logs is None else _FIRST_AHEAD_SPAN
        start = first
        while start <= last:
            end = min(last, start + (self.span if sized is None else min(self.span, sized)) - 1)
            query: dict[str, object] = {
                "address": self._address,
                "fromBlock": hex(start),
                "toBlock": hex(end),
            }
            if topics is not None:
                query["topics"] = list(topics)
            try:
                logs: list[RawLog] = await self._client.call("eth_getLogs", [query])
                if not isinstance(logs, list):
                    # A failed read, not an empty range: taking it for "no logs"
                    # would move a cursor over blocks nobody read.
                    raise RpcProtocolError(
                        f"eth_getLogs {start}..{end} answered {logs!r:.80}, not a list",
                        url=self._client.masked_url,
                        method="eth_getLogs",
                    )
            except RpcResponseError as exc:
                fault = classify(exc)
                if fault is Fault.RANGE_TOO_LARGE:
                    self._shrink(exc, start, end)
                    continue
                if fault is Fault.UNSUPPORTED:
                    raise UnsupportedNodeError(
                        f"node offers no eth_getLogs: {exc}", url=self._client.masked_url
                    ) from exc
                if fault is Fault.FATAL:
                    raise
                await retrier.pause(exc, f"eth_getLogs {start}..{end}")
                continue
            except Exception as exc:
                if classify(exc) is not Fault.TRANSIENT:
                    raise
                await retrier.pause(exc, f"eth_getLogs {start}..{end}")
                continue
            retrier.succeeded()
            self._grow(end - start + 1, len(logs) if isinstance(logs, list) else 0)
            # Only what was asked for: a log beyond ``end`` has no head or
            # confirmation behind it yet, and one before ``start`` was read already.
            kept = logs_in_range(logs, self._address, start, end)
            if chunk_logs is not None:
                sized = _next_size(end - start + 1, len(kept), chunk_logs)
            yield end, kept
            if progress is not None:
                progress(first, end, last)
            start = end + 1

    async def read_ahead(
        self,
        first: int,
        last: int,
        *,
        topics: Sequence[object] | None = None,
        progress: ProgressCallback | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        """What :meth:`read` yields, with the next chunk fetched while the caller handles one.

        At most ``READ_AHEAD_CHUNKS`` chunk is in flight or waiting beyond the
        one the caller holds; chunks aim at ``CHUNK_LOGS`` logs. Faults are
        met as :meth:`read` meets them, and one it raises comes out after the
        chunks before it. Closing this generator (or cancelling its caller)
        cancels the request in flight and waits for it to end.
        """
        chunks = self.read(first, last, topics=topics, chunk_logs=CHUNK_LOGS)
        ready: asyncio.Queue[Chunk | BaseException | None] = asyncio.Queue()
        # Taken before a request is sent, given back when the caller takes its chunk.
        slots = asyncio.Semaphore(READ_AHEAD_CHUNKS)

        async def fetch() -> None:
            async with contextlib.aclosing(chunks):
                try:
                    while True:
                        await slots.acquire()
                        ready.put_nowait(await anext(chunks))
                except StopAsyncIteration:
                    ready.put_nowait(None)
                except Exception as exc:  # the caller raises it, in order
                    ready.put_nowait(exc)
                except asyncio.CancelledError:
                    # Cancelled by someone other than the caller (say, a loop
                    # shutting down): the caller must not wait forever.
                    ready.put_nowait(RuntimeError("the history read-ahead task was cancelled"))
                    raise

        task = asyncio.get_running_loop().create_task(
            fetch(), name=f"ogpu.events eth_getLogs {first}..{last}"
        )
        try:
            while True:
                item = await ready.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                slots.release()
                yield item
                if progress is not None:
                    progress(first, item[0], last)
        finally:
            task.cancel()
            # Not ``await task``: it would raise the task's CancelledError here,
            # and a caller cancelled meanwhile must still see its own.
            await asyncio.wait([task])

    def _shrink(self, exc: RpcResponseError, start: int, end: int) -> None:
        tried = end - start + 1
        if tried <= 1:
            raise exc  # one block is as small as a range gets
        self.refusals += 1
        self._streak = 0
        message = exc.args[0] if exc.args else ""
        suggested = suggested_span(message)
        if _RESULTS_REFUSAL.search(message):
            # Too many logs in this range, not too many blocks: the next
            # chunks are sized by density (see _grow), the retry now takes
            # the range the provider suggests, or half.
            if "[" not in message:  # a number here may be a block range for no limit (Alchemy's "2K")
                suggested = None
            limit = _RESULTS_LIMIT.search(message)
            if limit:
                self.results_cap = int(limit.group(1)) * (1000 if limit.group(2) else 1)
            else:
                self._ceiling = max(1, min(self._ceiling, tried - 1))
            self.span = max(1, min(suggested, tried - 1) if suggested else tried // 2)
            self._tell(exc, start, end, f"reading {self.span}-block chunks, then sized by the logs found")
            return
        if suggested:  # the provider named its cap: keep to it from now on
            self.block_cap = max(1, min(suggested, tried - 1))
            self.span = self.block_cap
            self._tell(exc, start, end, f"reading {self.block_cap}-block chunks from now on")
            return
        self._refused = tried if self._refused is None else min(self._refused, tried)
        self.span = self._probe()
        self._tell(exc, start, end, "looking for the largest range it takes (halving, then bisecting)")

    def _probe(self) -> int:
        """The next size to try in the search for an unnamed block cap, or the cap once found."""
        assert self._refused is not None
        if self._taken == 0 or self._taken >= self._refused:
            return max(1, self._refused // 2)
        if self._refused - self._taken <= max(1, self._taken // _CLOSE_ENOUGH):
            self.block_cap = self._taken
            return self._taken
        return (self._taken + self._refused) // 2

    def _tell(self, exc: RpcResponseError, start: int, end: int, doing: str) -> None:
        """One INFO line per reader: later refusals are the learning at work, not news."""
        if self._told:
            return
        self._told = True
        log.info(
            "the node at %s refused eth_getLogs %d..%d (%s); %s",
            self._client.masked_url,
            start,
            end,
            describe(exc),
            doing,
        )

    def _grow(self, tried: int, found: int) -> None:
        """After ``tried`` blocks were read with ``found`` logs: the size of the next chunk."""
        if self.block_cap is None and self._refused is not None:
            self._taken = max(self._taken, tried)
            self.span = self._probe()
        else:
            self._streak += 1
            if self._streak >= _RETRY_CEILING_AFTER and self._ceiling < MAX_SPAN:
                self._ceiling = min(MAX_SPAN, self._ceiling + max(1, self._ceiling // 4))
                self._streak = 0
            self.span = min(self._ceiling, self.span * 2)
        if self.results_cap is not None:
            self.span = min(self.span, _next_size(tried, found, max(1, self.results_cap // 2)))
        if self.block_cap is not None:
            self.span = min(self.span, self.block_cap)
        self.span = max(1, min(self.span, MAX_SPAN))


def _next_size(tried: int, count: int, target: int) -> int:
    """Blocks for the next chunk, after ``count`` logs came from ``tried`` blocks: about ``target`` logs.

    Grows at most twofold, as :meth:`LogRangeReader._grow` does: past a stretch
    without logs there may be a dense one.
    """
    if count == 0:
        return tried * 2
    return max(1, min(tried * 2, tried * target // count))
