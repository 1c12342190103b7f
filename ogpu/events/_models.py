"""The typed events ``ogpu.events`` yields: frozen, slotted dataclasses.

Every event carries its payload first (in the ABI's order), then where it
sits on chain. ``block_hash`` is part of it because across a reorg two
different logs can share ``(block_number, log_index)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ogpu.types import DeliveryMethod, Environment, ResponseStatus, SourceStatus, TaskStatus

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


@dataclass(frozen=True, slots=True)
class TaskPublishedEvent:
    event_name: ClassVar[str] = "TaskPublished"
    task: str
    source: str
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class AttemptedEvent:
    event_name: ClassVar[str] = "Attempted"
    task: str
    provider: str
    suggested_payment: int
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class ResponseSubmittedEvent:
    event_name: ClassVar[str] = "ResponseSubmitted"
    response: str
    task: str
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class ResponseStatusChangedEvent:
    event_name: ClassVar[str] = "ResponseStatusChanged"
    response: str
    status: ResponseStatus
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class TaskStatusChangedEvent:
    event_name: ClassVar[str] = "TaskStatusChanged"
    task: str
    status: TaskStatus
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class RegisteredEvent:
    event_name: ClassVar[str] = "Registered"
    provider: str
    registrant_id: int
    source: str
    preferred_environment: Environment
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class SourcePublishedEvent:
    event_name: ClassVar[str] = "SourcePublished"
    source: str
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class SourceStatusChangedEvent:
    event_name: ClassVar[str] = "SourceStatusChanged"
    source: str
    status: SourceStatus
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class SourceParams:
    """The ``SourceParams`` struct of a ``SourceUpdated`` log."""

    client: str
    image_metadata_url: str
    image_environments: Environment
    min_payment: int
    min_available_lockup: int
    max_expiry_duration: int
    privacy_enabled: bool
    optional_params_url: str
    delivery_method: DeliveryMethod
    last_update_time: int


@dataclass(frozen=True, slots=True)
class SourceUpdatedEvent:
    event_name: ClassVar[str] = "SourceUpdated"
    source: str
    source_params: SourceParams
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class OwnershipTransferredEvent:
    event_name: ClassVar[str] = "OwnershipTransferred"
    previous_owner: str
    new_owner: str
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str


NexusEvent = (
    TaskPublishedEvent
    | AttemptedEvent
    | ResponseSubmittedEvent
    | ResponseStatusChangedEvent
    | TaskStatusChangedEvent
    | RegisteredEvent
    | SourcePublishedEvent
    | SourceStatusChangedEvent
    | SourceUpdatedEvent
    | OwnershipTransferredEvent
)
