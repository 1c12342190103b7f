"""Checking a node's log answers before anything reads them. No I/O here.

A node, a proxy or a load balancer can answer with logs nobody asked for:
of another contract, outside the block range, malformed, or a filter
answer that is not a list at all (hardhat answers ``null`` for a filter it
no longer knows). Whatever is dropped here is dropped with a WARNING, so a
misbehaving endpoint is never silent. What the logs left mean against the
chain the stream pins is ``_stream.screen``'s to decide.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

from ogpu._errors import RpcProtocolError
from ogpu.events._codec.abi import RawLog

__all__ = ["chain_order", "filter_changes", "logs_in_range", "well_formed"]

log = logging.getLogger("ogpu.events")

# ``all(map(isinstance, items, _STR))`` checks every item is a str without a
# Python-level loop (well_formed runs for every log); repeat() never runs out.
_STR = itertools.repeat(str)


def chain_order(raw: RawLog) -> tuple[int, int]:
    return int(raw["blockNumber"], 16), int(raw["logIndex"], 16)


def well_formed(raw: object) -> bool:
    """Whether a node's log has what ordering, deduplication and routing need; warns if not."""
    try:
        if isinstance(raw, dict):
            block = int(raw["blockNumber"], 16)
            index = int(raw["logIndex"], 16)
            block_hash = raw.get("blockHash")
            topics = raw.get("topics")
            if (
                block >= 0
                and index >= 0
                and (block_hash is None or isinstance(block_hash, str))
                and (topics is None or (isinstance(topics, list) and all(map(isinstance, topics, _STR))))
                and isinstance(raw.get("data"), str)
            ):
                return True
    except (KeyError, TypeError, ValueError, AttributeError):
        pass
    log.warning("skipping a malformed log from the node: %.200r", raw)
    return False


def filter_changes(answer: Any, address: str) -> list[RawLog] | None:
    """The logs of an ``eth_getFilterChanges`` answer, or ``None`` if the answer says the filter is gone.

    A filter's answer is a list, possibly empty; anything else (hardhat's
    ``null`` for an unknown filter) means the node no longer has it.
    """
    if not isinstance(answer, list):
        return None
    return _own(answer, address, "eth_getFilterChanges")


def logs_in_range(answer: Any, address: str, first: int, last: int) -> list[RawLog]:
    """The logs of an ``eth_getLogs`` answer for ``first..last`` that belong there."""
    if not isinstance(answer, list):
        # Never "no logs": the caller's read failed and is retried.
        raise RpcProtocolError(f"eth_getLogs {first}..{last} answered {answer!r:.80}, not a list")
    logs = _own(answer, address, f"eth_getLogs {first}..{last}")
    inside = [raw for raw in logs if first <= int(raw["blockNumber"], 16) <= last]
    if len(inside) < len(logs):
        outside = sorted({int(raw["blockNumber"], 16) for raw in logs} - set(range(first, last + 1)))
        log.warning(
            "eth_getLogs %d..%d answered %d logs outside that range (blocks %s); dropped",
            first,
            last,
            len(logs) - len(inside),
            _few(outside),
        )
    return inside


def _own(answer: list[Any], address: str, what: str) -> list[RawLog]:
    logs = [raw for raw in answer if well_formed(raw)]
    # Nodes spell addresses in lowercase: compared as given first, lowercased only if that fails.
    mine = [
        raw for raw in logs if raw.get("address") == address or str(raw.get("address", "")).lower() == address
    ]
    if len(mine) < len(logs):
        others = sorted({str(raw.get("address")) for raw in logs} - {address})
        log.warning(
            "%s answered %d logs of other contracts (%s); dropped", what, len(logs) - len(mine), _few(others)
        )
    return mine


def _few(items: list[Any]) -> str:
    shown = ", ".join(str(i) for i in items[:5])
    return shown + (f" and {len(items) - 5} more" if len(items) > 5 else "")
