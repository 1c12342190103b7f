"""OpenGPU Network SDK: chain configuration, Nexus types, and ``ogpu.events``.

``import ogpu`` stays light: the subpackages ``ogpu.events``, ``ogpu.types``
and ``ogpu.chain`` load on first use (``ogpu.events.watch_attempted`` works
right after ``import ogpu``), and httpx only with the first watcher.

``ogpu.set_verbose(True)`` shows the library's INFO log on stderr;
``OGPU_VERBOSE=1`` in the environment does the same at ``import ogpu``.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from ogpu.chain import ChainConfig, ChainId

if TYPE_CHECKING:
    from ogpu import chain as chain  # re-exported, lazily
    from ogpu import events as events
    from ogpu import types as types
    from ogpu._verbose import set_verbose as set_verbose

__all__ = ["ChainConfig", "ChainId", "set_verbose"]
__version__ = "0.3.0"

_SUBPACKAGES = frozenset({"chain", "events", "types"})

# Read once, at import, as the ogpu package 0.2.3 did; the logging module
# loads only when the variable is set.
if os.environ.get("OGPU_VERBOSE"):
    from ogpu._verbose import verbose_from_environment as _verbose_from_environment

    _verbose_from_environment(os.environ["OGPU_VERBOSE"])


def __getattr__(name: str) -> Any:
    # Called only for names not yet set on the package: importing the
    # submodule sets the attribute, so this runs once per subpackage.
    if name in _SUBPACKAGES:
        return importlib.import_module(f"ogpu.{name}")
    if name == "set_verbose":
        from ogpu._verbose import set_verbose

        return set_verbose
    raise AttributeError(f"module 'ogpu' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBPACKAGES, "set_verbose"})
