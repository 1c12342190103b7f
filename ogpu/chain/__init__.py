"""Which chain the SDK talks to: ``ChainConfig``, ``ChainId``, RPC URLs, contract addresses.

The work is in ``ogpu.chain.config`` (the path the ``ogpu`` package 0.2
used); everything public is importable from here as well.
"""

from __future__ import annotations

from ogpu.chain.config import (
    CHAIN_RPC_URLS,
    ChainConfig,
    ChainId,
    ConfigSnapshot,
    mask_url,
    parse_chain,
    validate_rpc_url,
)

__all__ = [
    "CHAIN_RPC_URLS",
    "ChainConfig",
    "ChainId",
    "ConfigSnapshot",
    "mask_url",
    "parse_chain",
    "validate_rpc_url",
]
