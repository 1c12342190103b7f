"""The typed events ``ogpu.events`` yields: frozen, slotted dataclasses.

Every event carries its payload first (in the ABI's order), then where it
sits on chain. ``block_hash`` is part of it because across a reorg two
different logs can share ``(block_number, log_index)``.

The field order is that of the ``ogpu`` package 0.2, whose users build
events by position in their tests: its fields first (payload, then
``block_number, transaction_hash, log_index``), then what it lacked, with
defaults: ``block_hash`` (``""``) and ``RegisteredEvent.preferred_environment``
(``Environment(0)``). The defaults keep the fields' types: every decoded
event has a real hash and environment, and code reading them never has to
handle a ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeVar

from ogpu.events._codec.position import OnChain
from ogpu.types import DeliveryMethod, Environment, ResponseStatus, SourceStatus, TaskStatus

__all__ = [
    "CHAIN_FIELDS",
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


# The fields that say where an event sits on chain, in dataclass order: set
# by the node that mined the log, after the payload of every event.
CHAIN_FIELDS = ("block_number", "transaction_hash", "log_index", "block_hash")

# Where every event sits on chain, written once and appended to each event's
# docstring, so help() on any of them reads whole.
_ON_CHAIN_DOC = """
    Where it sits on chain (every event has these, after its payload):
        block_number: the block that holds the log.
        transaction_hash: the transaction that emitted it (``0x`` + 64 lowercase hex).
        log_index: its position among the block's logs (per block, from 0).
        block_hash: the block's hash; with ``log_index`` it identifies the
            log even across a reorg. Every decoded event has it; an event
            built by hand without it has ``""``.
        position: all three as an ``EventPosition`` (a property), to store
            and resume from with ``after=``.
"""

_C = TypeVar("_C", bound=type)

# RegisteredEvent.preferred_environment when built by hand without it: no flag set.
_NO_ENVIRONMENT = Environment(0)


def _on_chain(cls: _C) -> _C:
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n" + _ON_CHAIN_DOC
    return cls


@_on_chain
@dataclass(frozen=True, slots=True)
class TaskPublishedEvent(OnChain):
    """A client published a task against a source (Nexus ``TaskPublished``).

    Fields:
        task: the new task's address (EIP-55 checksummed).
        source: the source the task runs on (EIP-55 checksummed).

    """

    event_name: ClassVar[str] = "TaskPublished"
    task: str
    source: str
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str = ""


@_on_chain
@dataclass(frozen=True, slots=True)
class AttemptedEvent(OnChain):
    """A provider attempted a task (Nexus ``Attempted``).

    Fields:
        task: the task's address (EIP-55 checksummed).
        provider: the attempting provider's address (EIP-55 checksummed).
        suggested_payment: what the provider asks, in wei of OGPU
            (10**18 wei = 1 OGPU); an exact int, up to 2**256 - 1.

    """

    event_name: ClassVar[str] = "Attempted"
    task: str
    provider: str
    suggested_payment: int
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str = ""


@_on_chain
@dataclass(frozen=True, slots=True)
class ResponseSubmittedEvent(OnChain):
    """A provider submitted a response to a task (Nexus ``ResponseSubmitted``).

    Fields:
        response: the new response's address (EIP-55 checksummed).
        task: the task it answers (EIP-55 checksummed).

    """

    event_name: ClassVar[str] = "ResponseSubmitted"
    response: str
    task: str
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str = ""


@_on_chain
@dataclass(frozen=True, slots=True)
class ResponseStatusChangedEvent(OnChain):
    """A response changed status (Nexus ``ResponseStatusChanged``).

    Fields:
        response: the response's address (EIP-55 checksummed).
        status: its new status, a ``ResponseStatus`` (SUBMITTED, CONFIRMED).

    """

    event_name: ClassVar[str] = "ResponseStatusChanged"
    response: str
    status: ResponseStatus
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str = ""


@_on_chain
@dataclass(frozen=True, slots=True)
class TaskStatusChangedEvent(OnChain):
    """A task changed status (Nexus ``TaskStatusChanged``).

    Fields:
        task: the task's address (EIP-55 checksummed).
        status: its new status, a ``TaskStatus`` (NEW, ATTEMPTED, RESPONDED,
            CANCELED, EXPIRED, FINALIZED).

    """

    event_name: ClassVar[str] = "TaskStatusChanged"
    task: str
    status: TaskStatus
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str = ""


@_on_chain
@dataclass(frozen=True, slots=True)
class RegisteredEvent(OnChain):
    """A provider registered to a source (Nexus ``Registered``).

    Fields:
        provider: the provider's address (EIP-55 checksummed).
        registrant_id: the registration's number at the source (an int).
        source: the source registered to (EIP-55 checksummed).
        preferred_environment: the provider's ``Environment`` flags (CPU,
            NVIDIA, AMD; several may be set). Last in the field order, after
            ``block_hash``; ``Environment(0)`` when built by hand without it.

    """

    event_name: ClassVar[str] = "Registered"
    provider: str
    registrant_id: int
    source: str
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str = ""
    # After the fields the ogpu package 0.2 had, so its positional order holds.
    preferred_environment: Environment = _NO_ENVIRONMENT


@_on_chain
@dataclass(frozen=True, slots=True)
class SourcePublishedEvent(OnChain):
    """A client published a source (Nexus ``SourcePublished``).

    Fields:
        source: the new source's address (EIP-55 checksummed).

    """

    event_name: ClassVar[str] = "SourcePublished"
    source: str
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str = ""


@_on_chain
@dataclass(frozen=True, slots=True)
class SourceStatusChangedEvent(OnChain):
    """A source changed status (Nexus ``SourceStatusChanged``).

    Fields:
        source: the source's address (EIP-55 checksummed).
        status: its new status, a ``SourceStatus`` (ACTIVE, INACTIVE).

    """

    event_name: ClassVar[str] = "SourceStatusChanged"
    source: str
    status: SourceStatus
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str = ""


@dataclass(frozen=True, slots=True)
class SourceParams:
    """The ``SourceParams`` struct of a ``SourceUpdated`` log: what a source asks of providers.

    Fields:
        client: the source owner's address (EIP-55 checksummed).
        image_metadata_url: where the container image's metadata lives (a URL, often ``ipfs://``).
        image_environments: the ``Environment`` flags the image runs on.
        min_payment: the least a provider may ask per task, in wei of OGPU (10**18 wei = 1 OGPU).
        min_available_lockup: the stake a provider must have available, in wei of OGPU.
        max_expiry_duration: the longest a task may stay open, in seconds.
        privacy_enabled: the source's privacy flag, as the contract stores it.
        optional_params_url: a URL with further parameters, or ``""``.
        delivery_method: how a response is accepted, a ``DeliveryMethod``
            (MANUAL_CONFIRMATION, FIRST_RESPONSE).
        last_update_time: when the parameters last changed, in Unix seconds.
    """

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


@_on_chain
@dataclass(frozen=True, slots=True)
class SourceUpdatedEvent(OnChain):
    """A source's parameters were set or changed (Nexus ``SourceUpdated``).

    Fields:
        source: the source's address (EIP-55 checksummed).
        source_params: the parameters now in force, a ``SourceParams``.

    """

    event_name: ClassVar[str] = "SourceUpdated"
    source: str
    source_params: SourceParams
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str = ""


@_on_chain
@dataclass(frozen=True, slots=True)
class OwnershipTransferredEvent(OnChain):
    """The Nexus contract changed owner (``OwnershipTransferred``).

    Fields:
        previous_owner: the former owner's address (EIP-55 checksummed).
        new_owner: the new owner's address (EIP-55 checksummed).

    """

    event_name: ClassVar[str] = "OwnershipTransferred"
    previous_owner: str
    new_owner: str
    block_number: int
    transaction_hash: str
    log_index: int
    block_hash: str = ""


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
