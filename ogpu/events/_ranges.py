"""``eth_getLogs`` over block ranges, in chunks that adapt to the provider.

Providers cap ranges and result counts in ways they rarely document, so the
chunk size is learned: it shrinks on a range or result-count error (to the
range the error suggests when it names one), grows again after successes,
and remembers the largest size that failed so it does not keep hitting it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Sequence

from ogpu._errors import RpcResponseError, UnsupportedNodeError
from ogpu.events._abi import RawLog
from ogpu.events._faults import Fault, Retrier, classify, suggested_span
from ogpu.events._rpc import RpcClient
from ogpu.events._screen import logs_in_range

__all__ = ["LogRangeReader", "ProgressCallback"]

log = logging.getLogger("ogpu.events")

# (first block, last block scanned so far, last block) after every chunk.
ProgressCallback = Callable[[int, int, int], None]

INITIAL_SPAN = 2_000
MAX_SPAN = 100_000
# Successes in a row before a span that once failed is tried again.
_RETRY_CEILING_AFTER = 20


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
    ) -> AsyncGenerator[tuple[int, list[RawLog]], None]:
        """Yield ``(chunk_last_block, logs)`` for ``first..last`` inclusive, in order.

        Transient faults are retried here with backoff; a range error shrinks
        the chunk and tries again from the same block, so nothing is skipped.
        """
        retrier = Retrier(lambda: self._client.ever_answered, self._client.masked_url)
        start = first
        while start <= last:
            end = min(last, start + self.span - 1)
            query: dict[str, object] = {
                "address": self._address,
                "fromBlock": hex(start),
                "toBlock": hex(end),
            }
            if topics is not None:
                query["topics"] = list(topics)
            try:
                logs: list[RawLog] = await self._client.call("eth_getLogs", [query])
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
            yield end, logs_in_range(logs, self._address, start, end)
            if progress is not None:
                progress(first, end, last)
            start = end + 1

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
