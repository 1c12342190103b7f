"""OpenGPU Network SDK: chain configuration, Nexus types, and ``ogpu.events``."""

from __future__ import annotations

from ogpu.chain import ChainConfig, ChainId

__all__ = ["ChainConfig", "ChainId"]
__version__ = "0.1.0"
