"""The stream as its neighbours drive it: the one door into ``_stream`` for the command, the demo and the kit.

``ogpu-events``, ``ogpu-events demo`` and ``ogpu.events.testing`` need a few
things the public watchers do not offer: open a stream with a progress line
and a start-up deadline of their own, ask how a stream is doing, wake it,
stop it. They get them here and only here, so the stream's insides (hubs,
lanes, retriers, module settings) can change without breaking them.

Also passed on: ``SCOPED_WATCHERS`` (the command's ``watch KIND`` table) and
``maybe_header`` (the command reads block 0 as the stream reads any header).
Nothing here loads httpx at import: ``ogpu.events`` re-exports :func:`health`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ogpu.chain import ChainConfig, ChainId, mask_url
from ogpu.events._net.faults import current_failures, startup_deadline_within
from ogpu.events._net.headers import maybe_header
from ogpu.events._watch.health import EndpointHealth, StreamHealth, endpoint_state
from ogpu.events._watch.watchers import SCOPED_WATCHERS, follow

if TYPE_CHECKING:
    from ogpu.events._net.endpoints import EndpointPool
    from ogpu.events._stream.hub import Hub

__all__ = [
    "SCOPED_WATCHERS",
    "RunningStream",
    "failing_now",
    "health",
    "maybe_header",
    "open_stream",
    "running_streams",
    "startup_deadline",
    "streams_at",
]

# Tries at listing the streams while event loops in other threads change the list.
_READ_TRIES = 5


# A watcher of some events (scoped by ``field`` = ``scope``, or all of them),
# as the public ones are built; ``progress`` and ``auto_commit`` are what the
# command needs beyond them. See ``follow``'s docstring.
open_stream = follow


@contextlib.contextmanager
def startup_deadline(seconds: float | None) -> Iterator[None]:
    """Within the block, give up on an endpoint that has never answered after ``seconds`` (default 10 s).

    Applies to the calling task and every task it starts, the streams it
    opens included; None keeps the default. ``asyncio.run`` inside the block
    runs under it.
    """
    if seconds is None:
        yield
        return
    with startup_deadline_within(seconds):
        yield


def failing_now() -> BaseException | None:
    """The latest error of a call being retried right now (a stream's poll, a history read); None if none is.

    What tells a quiet chain from a failing node when nothing has come for a while.
    """
    failures = current_failures()
    return failures[-1] if failures else None


class RunningStream:
    """One running stream (one event loop, endpoint and Nexus), as its neighbours may see and move it."""

    __slots__ = ("_hub",)

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunningStream) and other._hub is self._hub

    def __hash__(self) -> int:
        return id(self._hub)

    @property
    def polls(self) -> int:
        """Polls completed so far: a tick of the stream's loop."""
        return self._hub.ticks

    @property
    def ready_watchers(self) -> int:
        """Watchers that have joined and will get whatever is mined from now on."""
        return sum(
            1
            for lane in list(self._hub.lanes.values())
            for sub in lane.subscriptions()
            if sub.joined_at is not None
        )

    @property
    def filter_id(self) -> str | None:
        """The id of the node filter it polls now; None without one."""
        return self._hub.filter_id

    def health(self) -> StreamHealth:
        """How it is doing now (see ``StreamHealth``)."""
        hub = self._hub
        failure = hub.failure
        endpoint = EndpointHealth(
            url=mask_url(hub.url),
            state=endpoint_state(failing=failure is not None),
            head=hub.head,
            latency_s=hub.client.latency_s,
            last_error=None if failure is None else str(failure),
            answered=hub.client.ever_answered,
        )
        pool = hub.pool
        cursors = [lane.cursor for lane in list(hub.lanes.values()) if lane.cursor is not None]
        cursor = min(cursors, default=None)
        head = hub.head
        return StreamHealth(
            chain_id=hub.chain.chain_id if hub.chain.chain_id is not None else _chain_of(hub.nexus),
            endpoints=(endpoint,) if pool is None else _endpoints_of(pool),
            cursor=cursor,
            head=head,
            lag_blocks=None if cursor is None or head is None else max(0, head - cursor),
            watchers=hub.subscriber_count,
        )

    def wake(self) -> None:
        """Cut its sleep short: the next poll starts at once."""
        self._hub.poll_now()

    def stop(self, reason: str) -> asyncio.Task[None] | None:
        """Stop it without waiting, its node being gone: every watcher raises ``OGPUError(reason)``.

        Returns the task that uninstalls its filter and closes its client once
        its event loop runs next (None if none is left), for a caller that can
        wait for it.
        """
        return self._hub.abandon(reason)


def streams_at(url: str) -> list[RunningStream]:
    """The running streams following ``url``, on every event loop."""
    if not _stream_started():
        return []
    from ogpu.events._stream.hub import hubs_at

    return [RunningStream(hub) for hub in hubs_at(url)]


def running_streams() -> list[RunningStream]:
    """The running streams of every event loop of the process."""
    if not _stream_started():
        return []
    from ogpu.events._stream.hub import every_hub

    for _ in range(_READ_TRIES):
        try:
            return [RunningStream(hub) for hub in every_hub()]
        except RuntimeError:  # asked from another thread while a loop added or dropped a stream
            continue
    return []


def health() -> tuple[StreamHealth, ...]:
    """How each running stream of the process is doing: its endpoints, cursor, head and lag.

    One ``StreamHealth`` per running stream (the watchers of one event loop
    share one), in no particular order; an empty tuple while no watcher
    runs. Safe to call from any thread; nothing is asked of the node. See
    README "Health" for what a readiness check may look at.
    """
    return tuple(stream.health() for stream in running_streams())


def _endpoints_of(pool: EndpointPool) -> tuple[EndpointHealth, ...]:
    """A stream's several endpoints, the one in use first, then by preference."""
    rows = [
        EndpointHealth(
            url=e.name,
            state=state.value,
            head=e.head,
            latency_s=e.latency_s,
            last_error=e.last_error,
            answered=e.answered > 0,
        )
        for e, state in pool.endpoint_states()
    ]
    return tuple(sorted(rows, key=lambda row: row.state != "active"))


def _stream_started() -> bool:
    # Before the first watcher the stream's modules (and httpx) are not
    # loaded; asking about streams must not load them.
    return "ogpu.events._stream.hub" in sys.modules


def _chain_of(nexus: str) -> int:
    """The configured chain whose Nexus is ``nexus``, before the node has said its chain id."""
    for chain in ChainId:
        if ChainConfig.get_contract_address("NEXUS", chain).lower() == nexus.lower():
            return int(chain)
    return int(ChainConfig.get_current_chain())
