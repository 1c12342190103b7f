"""What this process's streams saw of their chains, kept after they stop, for ``after=``.

A watcher resumed with ``after=`` on a node that keeps no side blocks cannot
ask the node where its position's branch parted from the chain. A stream of
this process that followed that branch knows more: the hashes it pinned, and
the blocks it saw replaced. Kept per endpoint set, a few chains' worth; a
memory is used only where it holds the position's own block, so a node
restarted on the same URL with another chain is never mistaken for it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

__all__ = ["fork_of", "known_branch", "remember"]

# Endpoint sets remembered (the oldest forgotten first), and blocks per set.
_CHAINS_KEPT = 16
_BLOCKS_KEPT = 4_096

_lock = threading.Lock()  # streams of several event loops (threads) may stop at once
_pins: dict[tuple[str, ...], dict[int, str]] = {}
_replaced: dict[tuple[str, ...], dict[str, int]] = {}


def remember(urls: tuple[str, ...], pinned: Mapping[int, str], replaced: Mapping[str, int]) -> None:
    """Keep what a stopping stream knew: block hashes by height, and replaced blocks' forks."""
    with _lock:
        pins = _pins.pop(urls, {})
        pins.update(pinned)
        _pins[urls] = dict(sorted(pins.items())[-_BLOCKS_KEPT:])
        gone = _replaced.pop(urls, {})
        gone.update(replaced)
        _replaced[urls] = dict(list(gone.items())[-_BLOCKS_KEPT:])
        for table in (_pins, _replaced):
            while len(table) > _CHAINS_KEPT:
                del table[next(iter(table))]


def known_branch(urls: tuple[str, ...], number: int, block_hash: str) -> dict[int, str]:
    """Block hashes by height of a remembered chain that had ``block_hash`` at ``number``; else empty."""
    with _lock:
        pins = _pins.get(urls, {})
        return dict(pins) if pins.get(number) == block_hash.lower() else {}


def fork_of(urls: tuple[str, ...], block_hash: str) -> int | None:
    """Where the chains parted below a block a remembered stream saw replaced."""
    with _lock:
        return _replaced.get(urls, {}).get(block_hash.lower())
