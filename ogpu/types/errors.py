"""The error tree under the import path the ``ogpu`` package 0.2 used.

The classes live in ``ogpu._errors`` (its docstring draws the tree); this
module and ``ogpu.types`` name the same objects.
"""

from __future__ import annotations

from ogpu._errors import (
    ChainChangedError,
    ChainNotSupportedError,
    CheckpointError,
    CheckpointLostError,
    CheckpointMismatchError,
    CheckpointUrlError,
    CheckpointVersionError,
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
    "CheckpointError",
    "CheckpointLostError",
    "CheckpointMismatchError",
    "CheckpointUrlError",
    "CheckpointVersionError",
    "ConfigError",
    "InvalidAddressError",
    "InvalidArgumentError",
    "InvalidRpcUrlError",
    "LogDecodeError",
    "OGPUError",
    "RpcError",
    "RpcHttpError",
    "RpcProtocolError",
    "RpcResponseError",
    "RpcTransportError",
    "UnknownContractError",
    "UnsupportedNodeError",
]
