"""Async watchers for the OpenGPU Nexus contract's events.

Each watcher is an async generator that yields frozen, typed events in chain
order, exactly once, from a stream shared by every watcher in the process::

    async for event in watch_attempted(task_address):
        print(event.provider, event.suggested_payment)

Leaving the loop (``break``, ``return``, a timeout, cancellation) is safe:
the watcher leaves the shared stream, and the last one out uninstalls the
node filter and stops polling.
"""

from __future__ import annotations

from ogpu.events._models import (
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
from ogpu.events._watchers import (
    watch_attempted,
    watch_nexus,
    watch_registered,
    watch_response_status_changed,
    watch_response_submitted,
    watch_task_published,
    watch_task_status_changed,
)

__all__ = [
    "AttemptedEvent",
    "NexusEvent",
    "OwnershipTransferredEvent",
    "RegisteredEvent",
    "ResponseStatusChangedEvent",
    "ResponseSubmittedEvent",
    "SourceParams",
    "SourcePublishedEvent",
    "SourceStatusChangedEvent",
    "SourceUpdatedEvent",
    "TaskPublishedEvent",
    "TaskStatusChangedEvent",
    "watch_attempted",
    "watch_nexus",
    "watch_registered",
    "watch_response_status_changed",
    "watch_response_submitted",
    "watch_task_published",
    "watch_task_status_changed",
]
