"""``eth_getLogs`` over block ranges, in chunks that adapt to the provider.

Providers cap ranges and result counts in ways they rarely document, so the
chunk size is learned: it shrinks on a range or result-count error (to the
range the error suggests when it names one), grows again after successes,
and remembers the largest size that failed so it does not keep hitting it.

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
from collections.abc import AsyncGenerator, Callable, Sequence

from ogpu._errors import RpcProtocolError, RpcResponseError, UnsupportedNodeError
from ogpu.events._abi import RawLog
from ogpu.events._faults import Fault, Retrier, classify, suggested_span
from ogpu.events._rpc import RpcClient
from ogpu.events._screen import logs_in_range

__all__ = ["CHUNK_LOGS", "READ_AHEAD_CHUNKS", "LogRangeReader", "ProgressCallback"]

log = logging.getLogger("ogpu.events")

# (first block, last block scanned so far, last block) after every chunk.
ProgressCallback = Callable[[int, int, int], None]

INITIAL_SPAN = 2_000
MAX_SPAN = 100_000
# Successes in a row before a span that once failed is tried again.
_RETRY_CEILING_AFTER = 20
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

    def __init__(self, client: RpcClient, address: str) -> None:
        self._client = client
        self._address = address.lower()
        self.span = INITIAL_SPAN
        self._ceiling = MAX_SPAN
        self._streak = 0

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
            self._grow()
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
        suggested = suggested_span(exc.args[0] if exc.args else "")
        new_span = min(suggested, tried - 1) if suggested else max(1, tried // 2)
        self._ceiling = max(1, min(self._ceiling, tried - 1))
        self.span = max(1, new_span)
        self._streak = 0
        log.warning(
            "eth_getLogs %d..%d refused (%s); retrying with %d-block chunks",
            start,
            end,
            exc,
            self.span,
        )

    def _grow(self) -> None:
        self._streak += 1
        if self._streak >= _RETRY_CEILING_AFTER and self._ceiling < MAX_SPAN:
            self._ceiling = min(MAX_SPAN, self._ceiling + max(1, self._ceiling // 4))
            self._streak = 0
        self.span = min(self._ceiling, self.span * 2)


def _next_size(tried: int, count: int, target: int) -> int:
    """Blocks for the next chunk, after ``count`` logs came from ``tried`` blocks: about ``target`` logs.

    Grows at most twofold, as :meth:`LogRangeReader._grow` does: past a stretch
    without logs there may be a dense one.
    """
    if count == 0:
        return tried * 2
    return max(1, min(tried * 2, tried * target // count))
