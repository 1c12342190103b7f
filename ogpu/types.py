"""Nexus enums (uint8 on chain) and the error tree, under their public names."""

from __future__ import annotations

from enum import IntEnum, IntFlag

from ogpu._errors import (
    ChainChangedError,
    ChainNotSupportedError,
    ConfigError,
    InvalidAddressError,
    InvalidArgumentError,
    InvalidRpcUrlError,
    LogDecodeError,
    OGPUError,
    RpcError,
    RpcHttpError,
    RpcProtocolError,
    RpcResponseError,
    RpcTransportError,
    UnknownContractError,
    UnsupportedNodeError,
)

__all__ = [
    "ChainChangedError",
    "ChainNotSupportedError",
    "ConfigError",
    "DeliveryMethod",
    "Environment",
    "InvalidAddressError",
    "InvalidArgumentError",
    "InvalidRpcUrlError",
    "LogDecodeError",
    "OGPUError",
    "ResponseStatus",
    "RpcError",
    "RpcHttpError",
    "RpcProtocolError",
    "RpcResponseError",
    "RpcTransportError",
    "SourceStatus",
    "TaskStatus",
    "UnknownContractError",
    "UnsupportedNodeError",
]


class TaskStatus(IntEnum):
    NEW = 0
    ATTEMPTED = 1
    RESPONDED = 2
    CANCELED = 3
    EXPIRED = 4
    FINALIZED = 5


class ResponseStatus(IntEnum):
    SUBMITTED = 0
    CONFIRMED = 1


class SourceStatus(IntEnum):
    ACTIVE = 0
    INACTIVE = 1


class Environment(IntFlag):
    """Bit flags: a source may accept several environments at once."""

    CPU = 1
    NVIDIA = 2
    AMD = 4


class DeliveryMethod(IntEnum):
    MANUAL_CONFIRMATION = 0
    FIRST_RESPONSE = 1
