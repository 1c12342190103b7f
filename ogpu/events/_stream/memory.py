"""What this process's streams saw of their chains, kept after they stop, for ``after=``.

A watcher resumed with ``after=`` on a node that keeps no side blocks cannot
ask the node where its position's branch parted from the chain. A stream of
this process that followed that branch knows more: the hashes of the blocks
it pinned or handed out logs of. Kept per endpoint set, a few chains' worth;
a memory is used only where it holds the position's own block, and only the
blocks the node still shows with the remembered hash count as common, so a
node restarted on the same URL with another chain is never mistaken for it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

__all__ = ["known_branch", "remember"]

# Endpoint sets remembered (the oldest forgotten first), and blocks per set.
_CHAINS_KEPT = 16
_BLOCKS_KEPT = 4_096

_lock = threading.Lock()  # streams of several event loops (threads) may stop at once
_pins: dict[tuple[str, ...], dict[int, str]] = {}


def remember(urls: tuple[str, ...], blocks: Mapping[int, str]) -> None:
    """Keep what a stopping stream knew of its chain, block hashes by height, instead of an older one's.

    Not merged with what an earlier stream knew: that one may have followed
    another chain (a node restarted), and one memory holds one branch.
    """
    with _lock:
        _pins.pop(urls, None)
        _pins[urls] = dict(sorted(blocks.items())[-_BLOCKS_KEPT:])
        while len(_pins) > _CHAINS_KEPT:
            del _pins[next(iter(_pins))]


def known_branch(urls: tuple[str, ...], number: int, block_hash: str) -> dict[int, str]:
    """Block hashes by height of a remembered chain that had ``block_hash`` at ``number``; else empty."""
    with _lock:
        pins = _pins.get(urls, {})
        return dict(pins) if pins.get(number) == block_hash.lower() else {}
