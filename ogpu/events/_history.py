"""Past events for one watcher: ``eth_getLogs`` from its ``from_block`` up to where it joined the stream.

History is read per watcher (scoped by its event topics) while the shared
stream runs on; what it yields is told to the watcher's lane, so a reorg
that later takes such a log off the chain is named in the WARNING.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

from ogpu._errors import LogDecodeError
from ogpu.events._abi import EventSpec, RawLog
from ogpu.events._ranges import LogRangeReader, ProgressCallback
from ogpu.events._screen import chain_order

__all__ = ["read_history"]

log = logging.getLogger("ogpu.events")


async def read_history(
    reader: LogRangeReader,
    specs: Sequence[EventSpec],
    field: str | None,
    scope: str | None,
    first: int,
    last: int,
    *,
    progress: ProgressCallback | None,
    remember: Callable[[RawLog], None],
    stream_error: Callable[[], BaseException | None],
) -> AsyncGenerator[Any, None]:
    """Decoded past events of ``specs`` in ``first..last``, scoped like a watcher, in chain order."""
    by_topic = {spec.topic0: spec for spec in specs}
    topics: list[object] = [list(by_topic)] if len(by_topic) > 1 else [next(iter(by_topic))]
    chunks = reader.read_ahead(first, last, topics=topics, progress=progress)
    async with contextlib.aclosing(chunks):
        while True:
            try:
                _, logs = await anext(chunks)
            except StopAsyncIteration:
                return
            except Exception:
                # The shared stream failed meanwhile (and closed the client the
                # reader uses): its typed error is the one to report.
                failed = stream_error()
                if failed is not None:
                    raise failed from None
                raise
            logs.sort(key=chain_order)
            # The reader keeps each chunk to its own range, so a log can only
            # come twice within one answer: that must not make it come out twice.
            yielded: set[tuple[str, int]] = set()
            for raw in logs:
                if raw.get("removed") or raw.get("blockHash") is None:
                    continue
                key = (raw["blockHash"].lower(), int(raw["logIndex"], 16))
                if key in yielded:
                    continue
                yielded.add(key)
                remember(raw)
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
