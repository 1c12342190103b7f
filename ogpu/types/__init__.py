"""Nexus enums (uint8 on chain), ``Role``, ``Environment`` mask helpers, and the error tree.

Everything public is importable from here; ``ogpu.types.enums`` and
``ogpu.types.errors`` hold the same objects under the paths the ``ogpu``
package 0.2 used.
"""

from __future__ import annotations

# From ogpu._errors, not .errors: that module loads only for code that names it.
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
from ogpu.types.enums import (
    DeliveryMethod,
    Environment,
    ResponseStatus,
    Role,
    SourceStatus,
    TaskStatus,
    combine_environments,
    environment_names,
    parse_environments,
    unknown_member,
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
    "Role",
    "RpcError",
    "RpcHttpError",
    "RpcProtocolError",
    "RpcResponseError",
    "RpcTransportError",
    "SourceStatus",
    "TaskStatus",
    "UnknownContractError",
    "UnsupportedNodeError",
    "combine_environments",
    "environment_names",
    "parse_environments",
    "unknown_member",
]
