"""Follow the OpenGPU Nexus contract as it happens: async watchers of its events.

Each watcher is an async generator that yields frozen, typed events in chain
order, exactly once, from one stream shared by every watcher in the process::

    import asyncio
    from ogpu.events import watch_attempted

    async def monitor(task_address: str) -> None:
        async for event in watch_attempted(task_address):
            print(event.provider, event.suggested_payment, event.block_number)

    asyncio.run(monitor("0x..."))

Which node: by default the OGPU mainnet's public node
(https://mainnet-rpc.ogpuscan.io). To follow another chain or node, set
``OGPU_CHAIN=testnet`` / ``OGPU_RPC_URL=http://127.0.0.1:8545`` in the
environment, or in code::

    from ogpu import ChainConfig
    ChainConfig.set_rpc("http://127.0.0.1:8545")

Watchers, each scoped by one address:

    watch_task_published(source)            -> TaskPublishedEvent
    watch_attempted(task)                   -> AttemptedEvent
    watch_response_submitted(task)          -> ResponseSubmittedEvent
    watch_response_status_changed(response) -> ResponseStatusChangedEvent
    watch_task_status_changed(task)         -> TaskStatusChangedEvent
    watch_registered(source)                -> RegisteredEvent
    watch_nexus(*event_types)               -> any Nexus event, unscoped

Keywords, the same for all: ``from_block`` (``None``: new events only; ``N``:
history from block N, then live), ``poll_interval`` (seconds, default 2),
``confirmations`` (blocks on top before an event is yielded, default 0),
``after`` (resume strictly after an event yielded before, its
``event.position`` or a ``(block_number, log_index)`` pair; the position is
an ``EventPosition``, stored as ``str(position)`` and read back with
``EventPosition.parse``).

Bad arguments raise when the watcher is called; a node that cannot be used
raises a typed ``RpcError`` (``ogpu.types``) from the first ``__anext__``
within seconds. Leaving the loop (``break``, ``return``, a timeout,
cancellation) is safe: the watcher leaves the shared stream, and the last
one out uninstalls the node filter and stops polling.

Durable positions: ``Checkpoint("sqlite:///app.db", "name")`` (or a
``postgresql://`` URL), passed as ``checkpoint=``, resumes after its committed
position and commits each event's position, with the service's own writes
inside ``checkpoint.transaction()``; ``lease=`` lets replicas take turns.

How the streams are doing (a readiness check, a dashboard): ``health()``,
one ``StreamHealth`` per running stream, with its endpoints, cursor and lag.

From a terminal: ``ogpu-events watch attempted 0xTASK``, ``ogpu-events
--help``. To test code built on the watchers without a node:
``ogpu.events.testing.FakeNode``.
"""

from __future__ import annotations

from ogpu.events._checkpoint.store import Checkpoint
from ogpu.events._codec.models import (
    AttemptedEvent,
    NexusEvent,
    OwnershipTransferredEvent,
    RegisteredEvent,
    ResponseStatusChangedEvent,
    ResponseSubmittedEvent,
    SourceParams,
    SourcePublishedEvent,
    SourceStatusChangedEvent,
    SourceUpdatedEvent,
    TaskPublishedEvent,
    TaskStatusChangedEvent,
)
from ogpu.events._codec.position import EventPosition
from ogpu.events._stream.control import health
from ogpu.events._stream.health import EndpointHealth, StreamHealth
from ogpu.events._stream.watch import (
    _SHARED_DOC,
    watch_attempted,
    watch_nexus,
    watch_registered,
    watch_response_status_changed,
    watch_response_submitted,
    watch_task_published,
    watch_task_status_changed,
)

# The watchers' shared keyword arguments, errors and cancelling, said once
# here rather than in each of the seven watchers' help (None under -OO).
if __doc__ is not None:
    __doc__ += "\nShared by every watcher\n-----------------------\n" + _SHARED_DOC.replace("\n    ", "\n")

__all__ = [
    "AttemptedEvent",
    "Checkpoint",
    "EndpointHealth",
    "EventPosition",
    "NexusEvent",
    "OwnershipTransferredEvent",
    "RegisteredEvent",
    "ResponseStatusChangedEvent",
    "ResponseSubmittedEvent",
    "SourceParams",
    "SourcePublishedEvent",
    "SourceStatusChangedEvent",
    "SourceUpdatedEvent",
    "StreamHealth",
    "TaskPublishedEvent",
    "TaskStatusChangedEvent",
    "health",
    "watch_attempted",
    "watch_nexus",
    "watch_registered",
    "watch_response_status_changed",
    "watch_response_submitted",
    "watch_task_published",
    "watch_task_status_changed",
]
