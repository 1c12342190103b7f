"""The event dataclasses, under the import path the ``ogpu`` package 0.2 used.

``from ogpu.events.types import AttemptedEvent`` and ``from ogpu.events
import AttemptedEvent`` name the same class; the classes live in
``ogpu.events._codec.models``.
"""

from __future__ import annotations

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
]
