"""The public watchers: thin async generators over the shared stream.

The six scoped watchers differ only in the event, the field they scope by
and the dataclass they yield; ``_WATCHED`` holds that, ``_follow`` does the
rest for all of them and for the unscoped ``watch_nexus``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ogpu._errors import InvalidAddressError, InvalidArgumentError
from ogpu.chain import ChainConfig
from ogpu.events._codec.abi import EVENTS, EventSpec, spec_of
from ogpu.events._codec.address import normalize_address
from ogpu.events._codec.models import (
    AttemptedEvent,
    NexusEvent,
    RegisteredEvent,
    ResponseStatusChangedEvent,
    ResponseSubmittedEvent,
    TaskPublishedEvent,
    TaskStatusChangedEvent,
)
from ogpu.events._codec.position import EventPosition, position_of

if TYPE_CHECKING:
    from ogpu.events._checkpoint.store import Checkpoint
    from ogpu.events._net.ranges import ProgressCallback
    from ogpu.events._stream.lane import Subscription
    from ogpu.events._stream.resume import ResumePoint

log = logging.getLogger("ogpu.events")

__all__ = [
    "SCOPED_WATCHERS",
    "follow",
    "watch_attempted",
    "watch_nexus",
    "watch_registered",
    "watch_response_status_changed",
    "watch_response_submitted",
    "watch_task_published",
    "watch_task_status_changed",
]

# Blocks below a watcher's join point where history and the live lane can
# overlap after a reorg: the lane keeps log identities this far back.
_OVERLAP_BLOCKS = 256
# Identities a watcher keeps before it forgets those below the overlap.
_KEEP_YIELDED = 4_096

# watcher name -> (Nexus event, the field whose address scopes it)
SCOPED_WATCHERS: dict[str, tuple[str, str]] = {
    "watch_task_published": ("TaskPublished", "source"),
    "watch_attempted": ("Attempted", "task"),
    "watch_response_submitted": ("ResponseSubmitted", "task"),
    "watch_response_status_changed": ("ResponseStatusChanged", "response"),
    "watch_task_status_changed": ("TaskStatusChanged", "task"),
    "watch_registered": ("Registered", "source"),
}


_F = TypeVar("_F", bound=Callable[..., Any])

# What ``after=`` takes: an event yielded before, its position, or a bare
# (block_number, log_index) pair.
After = NexusEvent | EventPosition | tuple[int, int] | None

# What every watcher shares, written once: the end of help(ogpu.events).
_SHARED_POINTER = """
    Keyword arguments (from_block, after, poll_interval, confirmations), the
    errors raised and what leaving the loop does are the same for every
    watcher: see help(ogpu.events), "Shared by every watcher".
"""
_SHARED_DOC = """
    Keyword arguments:
        from_block: ``None`` (default) yields only events mined after the
            watcher joined the stream. A block number ``N >= 0`` yields every
            matching event from block ``N`` on: history first (read with
            ``eth_getLogs``), then live, with no gap and no repeat. A block
            above the current head is waited for.
        after: resume after an event this or another watcher yielded
            before: the event itself, its ``event.position`` (an
            ``EventPosition``, e.g. ``EventPosition.parse(saved_text)``), or a
            ``(block_number, log_index)`` pair. Yields the matching events
            strictly after it in chain order (the rest of its block, then
            later blocks, history then live), no gap, no repeat. An event or
            a position carries its block's hash, checked against the node: if
            a reorg took that block off the chain, the watcher resumes where
            the chains part and logs a WARNING naming the events handled on
            the old branch. A pair has no hash, so it cannot be checked: it
            trusts that the block is still the one the events came from.
            Not together with ``from_block``.
        checkpoint: a ``Checkpoint`` (a database table) to resume after and
            commit to: the watcher resumes strictly after its committed
            position, as ``after=`` would (``from_block`` applies only
            while it has none), and commits each event's position when the
            loop asks for the next one, or with the service's own writes in
            ``checkpoint.transaction()``. Not together with ``after``.
        poll_interval: seconds between polls of the node (default ``2.0``,
            must be ``> 0``). Watchers share one poll loop, which ticks at the
            shortest interval any of them asked for.
        confirmations: blocks that must sit on top of an event's block
            before it is yielded (default ``0``). With ``N > 0`` an event a
            reorg removes before that depth is never yielded.

    Raises:
        InvalidAddressError: when called, for a scoping address that is not a
            20-byte hex string (any letter case is accepted), or none at all.
        InvalidArgumentError: when called, for a bad ``from_block``,
            ``after``, ``poll_interval`` or ``confirmations``, for ``after``
            and ``from_block`` together, or for an address given both by
            position and as ``..._address=``.
        InvalidRpcUrlError, ChainNotSupportedError: when called, for a bad
            ``ChainConfig`` / ``OGPU_RPC_URL`` / ``OGPU_CHAIN``.
        RpcTransportError, RpcHttpError, RpcProtocolError: from the first
            ``__anext__`` when the node cannot be used: refused or
            unresolvable within about 3 s, an answer that is not JSON-RPC
            (an HTML page, HTTP 4xx or 501) within about 5 s, no answer at all
            within about 10 s. Once the node has answered, transient faults
            are retried (each retry logged at WARNING on ``ogpu.events``), not
            raised.
        UnsupportedNodeError: when the node offers neither log filters nor
            ``eth_getLogs``, or cannot give block headers.
        ChainChangedError: when the node's ``eth_chainId`` changes under a
            running stream (a reorg or a restarted development node is
            followed, with a WARNING, not raised).
        CheckpointError: with ``checkpoint=``, from the first ``__anext__``
            when its database cannot be used (unreachable, wrong
            credentials, ``ogpu[postgres]`` missing), was written for
            another stream (``CheckpointMismatchError``) or by a newer
            version (``CheckpointVersionError``); ``CheckpointLostError``
            when another replica took the lease.

    Nothing touches the network until the first ``__anext__``. Cancelling is
    safe and loses nothing: leaving the loop (``break``, ``return``, an
    exception, ``asyncio.wait_for`` timing out, task cancellation,
    ``aclose()``) takes the watcher off the shared stream, and the last
    watcher out uninstalls the node filter and stops polling.

"""


def _documented(watcher: _F) -> _F:
    # Once, in help(ogpu.events), not seven times over (issue 21.10): a pointer here.
    watcher.__doc__ = (watcher.__doc__ or "").rstrip() + "\n" + _SHARED_POINTER
    return watcher


@_documented
def watch_task_published(
    source: str | None = None,
    *,
    source_address: str | None = None,
    from_block: int | None = None,
    after: After = None,
    poll_interval: float = 2.0,
    confirmations: int = 0,
    checkpoint: Checkpoint | None = None,
) -> AsyncGenerator[TaskPublishedEvent, None]:
    """Tasks published against ``source``: one ``TaskPublishedEvent`` per new task.

    Args:
        source: the source's address (``0x`` + 40 hex digits, any case).
        source_address: the same, under the name the ``ogpu`` package 0.2
            used; give one of the two.

    Yields:
        ``TaskPublishedEvent(task, source)``:
        exactly once each, in chain order (block number, then log index).
        Addresses are EIP-55 checksummed.

    Example::

        async for event in watch_task_published(source_address):
            print("new task", event.task, "in block", event.block_number)
    """
    return _scoped(
        "watch_task_published",
        source,
        source_address,
        from_block,
        poll_interval,
        confirmations,
        after,
        checkpoint,
    )


@_documented
def watch_attempted(
    task: str | None = None,
    *,
    task_address: str | None = None,
    from_block: int | None = None,
    after: After = None,
    poll_interval: float = 2.0,
    confirmations: int = 0,
    checkpoint: Checkpoint | None = None,
) -> AsyncGenerator[AttemptedEvent, None]:
    """Provider attempts on ``task``: one ``AttemptedEvent`` per attempt.

    Args:
        task: the task's address (``0x`` + 40 hex digits, any case).
        task_address: the same, under the name the ``ogpu`` package 0.2
            used; give one of the two.

    Yields:
        ``AttemptedEvent(task, provider, suggested_payment)``, the payment in wei:
        exactly once each, in chain order (block number, then log index).
        Addresses are EIP-55 checksummed.

    Example::

        async for event in watch_attempted(task_address, from_block=0):
            print(event.provider, "asks", event.suggested_payment / 10**18, "OGPU")
    """
    return _scoped(
        "watch_attempted", task, task_address, from_block, poll_interval, confirmations, after, checkpoint
    )


@_documented
def watch_response_submitted(
    task: str | None = None,
    *,
    task_address: str | None = None,
    from_block: int | None = None,
    after: After = None,
    poll_interval: float = 2.0,
    confirmations: int = 0,
    checkpoint: Checkpoint | None = None,
) -> AsyncGenerator[ResponseSubmittedEvent, None]:
    """Responses submitted for ``task``: one ``ResponseSubmittedEvent`` per response.

    Args:
        task: the task's address (``0x`` + 40 hex digits, any case).
        task_address: the same, under the name the ``ogpu`` package 0.2
            used; give one of the two.

    Yields:
        ``ResponseSubmittedEvent(response, task)``:
        exactly once each, in chain order (block number, then log index).
        Addresses are EIP-55 checksummed.

    Example::

        async for event in watch_response_submitted(task_address):
            print("response", event.response)
    """
    return _scoped(
        "watch_response_submitted",
        task,
        task_address,
        from_block,
        poll_interval,
        confirmations,
        after,
        checkpoint,
    )


@_documented
def watch_response_status_changed(
    response: str | None = None,
    *,
    response_address: str | None = None,
    from_block: int | None = None,
    after: After = None,
    poll_interval: float = 2.0,
    confirmations: int = 0,
    checkpoint: Checkpoint | None = None,
) -> AsyncGenerator[ResponseStatusChangedEvent, None]:
    """Status changes of ``response``: one ``ResponseStatusChangedEvent`` per change.

    Args:
        response: the response's address (``0x`` + 40 hex digits, any case).
        response_address: the same, under the name the ``ogpu`` package 0.2
            used; give one of the two.

    Yields:
        ``ResponseStatusChangedEvent(response, status)``, ``status`` a ``ResponseStatus``:
        exactly once each, in chain order (block number, then log index).
        Addresses are EIP-55 checksummed.

    Example::

        async for event in watch_response_status_changed(response_address):
            if event.status is ResponseStatus.CONFIRMED:
                break
    """
    return _scoped(
        "watch_response_status_changed",
        response,
        response_address,
        from_block,
        poll_interval,
        confirmations,
        after,
        checkpoint,
    )


@_documented
def watch_task_status_changed(
    task: str | None = None,
    *,
    task_address: str | None = None,
    from_block: int | None = None,
    after: After = None,
    poll_interval: float = 2.0,
    confirmations: int = 0,
    checkpoint: Checkpoint | None = None,
) -> AsyncGenerator[TaskStatusChangedEvent, None]:
    """Status changes of ``task``: one ``TaskStatusChangedEvent`` per change.

    Args:
        task: the task's address (``0x`` + 40 hex digits, any case).
        task_address: the same, under the name the ``ogpu`` package 0.2
            used; give one of the two.

    Yields:
        ``TaskStatusChangedEvent(task, status)``, ``status`` a ``TaskStatus``:
        exactly once each, in chain order (block number, then log index).
        Addresses are EIP-55 checksummed.

    Example::

        async def finalized(task_address: str) -> None:
            async for event in watch_task_status_changed(task_address, confirmations=2):
                if event.status is TaskStatus.FINALIZED:
                    return

        await asyncio.wait_for(finalized(task_address), timeout=600)
    """
    return _scoped(
        "watch_task_status_changed",
        task,
        task_address,
        from_block,
        poll_interval,
        confirmations,
        after,
        checkpoint,
    )


@_documented
def watch_registered(
    source: str | None = None,
    *,
    source_address: str | None = None,
    from_block: int | None = None,
    after: After = None,
    poll_interval: float = 2.0,
    confirmations: int = 0,
    checkpoint: Checkpoint | None = None,
) -> AsyncGenerator[RegisteredEvent, None]:
    """Provider registrations to ``source``: one ``RegisteredEvent`` per registration.

    Args:
        source: the source's address (``0x`` + 40 hex digits, any case).
        source_address: the same, under the name the ``ogpu`` package 0.2
            used; give one of the two.

    Yields:
        ``RegisteredEvent(provider, registrant_id, source, preferred_environment)``:
        exactly once each, in chain order (block number, then log index).
        Addresses are EIP-55 checksummed.

    Example::

        async for event in watch_registered(source_address, from_block=0):
            print(event.provider, event.preferred_environment)
    """
    return _scoped(
        "watch_registered",
        source,
        source_address,
        from_block,
        poll_interval,
        confirmations,
        after,
        checkpoint,
    )


@_documented
def watch_nexus(
    *event_types: str | type[Any],
    from_block: int | None = None,
    after: After = None,
    poll_interval: float = 2.0,
    confirmations: int = 0,
    checkpoint: Checkpoint | None = None,
) -> AsyncGenerator[NexusEvent, None]:
    """Every Nexus event of the given types (all of them when none is given), unscoped.

    Args:
        *event_types: event names as the contract spells them
            (``"TaskPublished"``) or event classes (``TaskPublishedEvent``);
            none at all means every Nexus event. An unknown name raises
            ``InvalidArgumentError`` when called.
    Yields:
        any Nexus event dataclass (``NexusEvent``) of the types asked for:
        exactly once each, in chain order (block number, then log index).
        Addresses are EIP-55 checksummed.

    Example::

        async for event in watch_nexus("SourceUpdated", SourcePublishedEvent):
            print(event.event_name, event.source)
    """
    specs = tuple(spec_of(t) for t in event_types) or tuple(EVENTS.values())
    return follow(
        specs,
        None,
        None,
        from_block,
        poll_interval,
        confirmations,
        label="watch_nexus",
        after=after,
        checkpoint=checkpoint,
    )


# All watchers start the same way: every argument is checked here, when the
# watcher is called, so bad input fails before anything touches the network.


def _scoped(
    watcher: str,
    address: object,
    address_kw: object,
    from_block: object,
    poll_interval: object,
    confirmations: object,
    after: object,
    checkpoint: object = None,
) -> AsyncGenerator[Any, None]:
    event, field = SCOPED_WATCHERS[watcher]
    # The scoping address by position, as ``task=`` etc., or as ``task_address=``
    # etc. (the ogpu package 0.2's names): exactly one of them.
    if address is not None and address_kw is not None:
        raise InvalidArgumentError(
            f"{watcher}() got the {field} address twice, as {field} and as {field}_address; give one"
        )
    if address is None and address_kw is None:
        # An InvalidAddressError, as for any other value that is not an address.
        raise InvalidAddressError(
            f"{watcher}() needs the {field}'s address: {watcher}(address) or {field}_address=address"
        )
    scope = normalize_address(
        address if address_kw is None else address_kw, what=f"{watcher}() {field} address"
    )
    return follow(
        (EVENTS[event],),
        field,
        scope,
        from_block,
        poll_interval,
        confirmations,
        label=f"{watcher}(0x{scope})",
        after=after,
        checkpoint=checkpoint,
    )


def _check_options(from_block: object, poll_interval: object, confirmations: object) -> None:
    if from_block is not None and (
        not isinstance(from_block, int) or isinstance(from_block, bool) or from_block < 0
    ):
        raise InvalidArgumentError(f"from_block must be None or a block number >= 0, got {from_block!r}")
    if (
        not isinstance(poll_interval, int | float)
        or isinstance(poll_interval, bool)
        or not math.isfinite(poll_interval)
        or poll_interval <= 0
    ):
        raise InvalidArgumentError(f"poll_interval must be a number of seconds > 0, got {poll_interval!r}")
    if not isinstance(confirmations, int) or isinstance(confirmations, bool) or confirmations < 0:
        raise InvalidArgumentError(f"confirmations must be an int >= 0, got {confirmations!r}")


def follow(
    specs: tuple[EventSpec, ...],
    field: str | None,
    scope: str | None,
    from_block: Any,
    poll_interval: Any,
    confirmations: Any,
    *,
    label: str,
    progress: ProgressCallback | None = None,
    after: object = None,
    checkpoint: object = None,
    auto_commit: bool = True,
) -> AsyncGenerator[Any, None]:
    """Check the options and the configured endpoint, then return the generator.

    With ``checkpoint``, the generator resumes after the checkpoint's
    position (``after=``; ``from_block`` only while it has none) and commits
    each handled event's position (``auto_commit``; the command commits its
    own, after printing).
    """
    # The stream machinery (asyncio, httpx client, hub) loads on the first
    # watch, not at import: code that only needs the event types stays light.
    from ogpu.events._stream.lane import Subscription

    _check_options(from_block, poll_interval, confirmations)
    if checkpoint is not None:
        return _checkpointed(
            specs,
            field,
            scope,
            from_block,
            poll_interval,
            confirmations,
            label,
            progress,
            after,
            checkpoint,
            auto_commit,
        )
    position = None
    if after is not None:
        if from_block is not None:
            raise InvalidArgumentError(
                f"after= and from_block= cannot be used together (after={after!r:.80}, "
                f"from_block={from_block!r}): after= already says where to start"
            )
        position = position_of(after)
    urls = ChainConfig.get_rpcs()
    nexus = ChainConfig.get_contract_address("NEXUS")
    sub = Subscription(
        tuple(spec.name for spec in specs),
        field,
        scope,
        from_block=from_block,
        poll_interval=float(poll_interval),
        confirmations=confirmations,
        label=label,
    )
    return _follow(specs, sub, urls, nexus, progress, position)


def _checkpointed(
    specs: tuple[EventSpec, ...],
    field: str | None,
    scope: str | None,
    from_block: Any,
    poll_interval: Any,
    confirmations: Any,
    label: str,
    progress: ProgressCallback | None,
    after: object,
    checkpoint: object,
    auto_commit: bool,
) -> AsyncGenerator[Any, None]:
    # The checkpoint's position becomes after= (hash-checked, reorgs followed) at the first __anext__.
    from ogpu.events._checkpoint.store import Checkpoint, checkpointed

    if not isinstance(checkpoint, Checkpoint):
        raise InvalidArgumentError(f"checkpoint must be a Checkpoint, got {checkpoint!r:.80}")
    if after is not None:
        raise InvalidArgumentError(
            f"after= and checkpoint= cannot be used together (after={after!r:.80}): "
            "the checkpoint already says where to resume"
        )

    def make(position: EventPosition | None) -> AsyncGenerator[Any, None]:
        start = from_block if position is None else None
        return follow(
            specs,
            field,
            scope,
            start,
            poll_interval,
            confirmations,
            label=label,
            progress=progress,
            after=position,
        )

    urls = ChainConfig.get_rpcs()
    nexus = ChainConfig.get_contract_address("NEXUS")
    names = tuple(spec.name for spec in specs)
    return checkpointed(checkpoint, make, urls, nexus, names, field, scope, label, auto_commit=auto_commit)


async def _follow(
    specs: tuple[EventSpec, ...],
    sub: Subscription,
    urls: tuple[str, ...],
    nexus: str,
    progress: ProgressCallback | None,
    after: EventPosition | None = None,
) -> AsyncGenerator[Any, None]:
    # Cancelling or leaving this generator at any await is safe and loses
    # nothing: the finally clause takes the watcher off the stream, and the
    # last one to leave uninstalls the filter and stops the poll task.
    from ogpu.events._stream.hub import hub_for

    resume = None
    if after is not None:
        resume = await _resume_point(specs, sub, urls, nexus, after)
        sub.from_block = resume.from_block
        sub.resumed = True
    hub = hub_for(urls, nexus)

    def resumed_on_new_branch(event: Any) -> None:
        nonlocal resume
        if resume is not None and resume.after is not None and resume.left_branch(event):
            log.warning(
                "%s: the chain changed at or below block %d that after= names since it was checked "
                "(a reorg): events handled there may no longer be on the chain; yielding the new "
                "branch from block %d",
                sub.label,
                resume.after.block_number,
                event.block_number,
            )
            # Said once; the position's block and those below it still decide what is covered.
            resume = dataclasses.replace(resume, warned=True)

    def replaced_since(event: Any) -> bool:
        # A reorg below the position while this watcher ran: the block is not
        # the one the position was taken on (a pair carries no hash to tell).
        if sub.fork_below is None or event.block_number <= sub.fork_below:
            return False
        # Unless its block is the very one the position's branch had there.
        known = resume.branch.get(event.block_number) if resume is not None else None
        return known is None or known != str(event.block_hash).lower()

    await hub.subscribe(sub)
    try:
        joined = sub.join_cursor
        # What this watcher yielded lately, by (block hash, log index): a reorg
        # sends the lane back to the fork and it delivers everything above it
        # again (history's last blocks included); what came out once must not
        # come out a second time.
        yielded = _Yielded()
        if sub.from_block is not None and joined is not None and sub.from_block <= joined:
            past: AsyncGenerator[Any, None] = hub.history(
                specs, sub.field, sub.scope, sub.from_block, joined, progress, sub.confirmations, sub
            )
            async with contextlib.aclosing(past):
                async for event in past:
                    if event.block_number > joined - _OVERLAP_BLOCKS:
                        yielded.add(event)
                    if resume is None or not resume.covers(event) or replaced_since(event):
                        resumed_on_new_branch(event)
                        yield event
            sub.history_end = None
        while True:
            event = await sub.next()
            if yielded.seen(event):
                continue
            yielded.add(event)
            if resume is not None and resume.covers(event) and not replaced_since(event):
                continue
            resumed_on_new_branch(event)
            yield event
    finally:
        await hub.unsubscribe(sub)


class _Yielded:
    """The identities of the events one watcher yielded lately (every one above the newest - 256 blocks)."""

    __slots__ = ("_keys", "_newest")

    def __init__(self) -> None:
        self._keys: dict[tuple[str, int], int] = {}
        self._newest = -1

    def seen(self, event: Any) -> bool:
        return (event.block_hash, event.log_index) in self._keys

    def add(self, event: Any) -> None:
        block: int = event.block_number
        self._keys[(event.block_hash, event.log_index)] = block
        if block > self._newest:
            self._newest = block
        if len(self._keys) > _KEEP_YIELDED:
            horizon = self._newest - _OVERLAP_BLOCKS
            self._keys = {key: b for key, b in self._keys.items() if b > horizon}


async def _resume_point(
    specs: tuple[EventSpec, ...], sub: Subscription, urls: tuple[str, ...], nexus: str, after: EventPosition
) -> ResumePoint:
    # A client of its own: the check runs before the watcher joins the shared
    # stream, and a failure here must leave no stream behind.
    from ogpu.events._net.endpoints import open_client
    from ogpu.events._stream.hub import active_hubs
    from ogpu.events._stream.resume import resume_point

    def answered() -> bool:
        return any(hub.client.ever_answered for hub in active_hubs() if hub.urls == urls)

    def known_fork(block_hash: str) -> int | None:
        # A reorg the running stream followed knows where the chains part.
        forks = [hub.replaced[block_hash] for hub in active_hubs() if block_hash in hub.replaced]
        return min(forks, default=None)

    client = open_client(urls)
    try:
        return await resume_point(
            client, after, specs, sub.field, sub.scope, nexus, sub.label, answered, known_fork
        )
    finally:
        await client.aclose()
