"""OpenGPU Network SDK: chain configuration, Nexus types, and ``ogpu.events``.

``import ogpu`` stays light: the subpackages ``ogpu.events``, ``ogpu.types``
and ``ogpu.chain`` load on first use (``ogpu.events.watch_attempted`` works
right after ``import ogpu``), and httpx only with the first watcher.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ogpu.chain import ChainConfig, ChainId

if TYPE_CHECKING:
    from ogpu import chain as chain  # re-exported, lazily
    from ogpu import events as events
    from ogpu import types as types

__all__ = ["ChainConfig", "ChainId"]
__version__ = "0.1.0"

_SUBPACKAGES = frozenset({"chain", "events", "types"})


def __getattr__(name: str) -> Any:
    # Called only for names not yet set on the package: importing the
    # submodule sets the attribute, so this runs once per subpackage.
    if name in _SUBPACKAGES:
        return importlib.import_module(f"ogpu.{name}")
    raise AttributeError(f"module 'ogpu' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBPACKAGES})
