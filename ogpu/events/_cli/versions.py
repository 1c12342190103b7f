"""What ``ogpu-events --version`` reports: the package, and with ``-v`` what it runs on.

A bug report needs the versions of the few libraries the SDK depends on;
they are read from the installed distributions, never imported.
"""

from __future__ import annotations

import platform
from importlib import metadata

import ogpu

__all__ = ["DEPENDENCIES", "package_version", "version_lines"]

# The runtime dependencies, as pyproject.toml names them.
DEPENDENCIES = ("httpx", "eth-abi", "eth-utils", "pycryptodome")


def _installed(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def package_version() -> str:
    """The installed distribution's version; the source tree's when run uninstalled."""
    try:
        return metadata.version("ogpu")
    except metadata.PackageNotFoundError:
        return ogpu.__version__


def version_lines(prog: str, *, with_dependencies: bool = False) -> list[str]:
    lines = [f"{prog} (ogpu) {package_version()}"]
    if with_dependencies:
        lines += [f"  {name} {_installed(name)}" for name in DEPENDENCIES]
        lines.append(f"  Python {platform.python_version()} ({platform.python_implementation()})")
    return lines
