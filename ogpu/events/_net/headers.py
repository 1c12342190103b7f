"""Block headers as nodes answer them: parsed, checked for shape, asked for in batches.

Every layer that checks a read by hash needs these: the stream's chain view,
the endpoint pool (an answer counts only up to a header its endpoint showed),
checkpoints (block 0 tells a chain). So they live in the network layer. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ogpu._errors import RpcProtocolError, RpcResponseError

__all__ = ["Header", "header_calls", "header_of", "headers_by_number", "maybe_header", "parse_header"]


@dataclass(frozen=True, slots=True)
class Header:
    number: int
    hash: str
    parent_hash: str


def parse_header(answer: Any, method: str = "eth_getBlockByNumber") -> Header | None:
    """A block header from a node's answer; ``None`` when the node does not have the block."""
    if answer is None:
        return None
    try:
        number = int(answer["number"], 16)
        block_hash = str(answer["hash"]).lower()
        parent = str(answer["parentHash"]).lower()
    except (KeyError, TypeError, ValueError):
        raise RpcProtocolError(f"{method} answered {answer!r:.200}, not a block header") from None
    if not (block_hash.startswith("0x") and len(block_hash) == 66 and number >= 0):
        raise RpcProtocolError(f"{method} answered a header with hash {block_hash!r:.80}")
    return Header(number, block_hash, parent)


def header_of(answer: Any, which: str) -> Header:
    """The header the node gave for ``which``; a missing or failed answer is raised."""
    if isinstance(answer, BaseException):
        raise answer
    header = parse_header(answer, f"eth_getBlockByNumber({which})")
    if header is None:
        raise RpcProtocolError(f"eth_getBlockByNumber({which}) answered null")
    return header


def maybe_header(answer: Any, which: str) -> Header | None:
    """A header, or ``None`` where the node does not have (or will not give) that block."""
    if isinstance(answer, RpcResponseError):
        return None  # some nodes answer "header not found" instead of null
    if isinstance(answer, BaseException):
        raise answer
    return parse_header(answer, f"eth_getBlockByNumber({which})")


def header_calls(numbers: Iterable[int]) -> list[tuple[str, list[Any]]]:
    """The JSON-RPC calls that ask for the headers of blocks ``numbers``, for one batch."""
    return [("eth_getBlockByNumber", [hex(n), False]) for n in numbers]


def headers_by_number(numbers: Sequence[int], answers: Sequence[Any]) -> dict[int, Header | None]:
    """What a batch of :func:`header_calls` for ``numbers`` answered: each header, or ``None``
    where the node does not have (or will not give) that block."""
    return {n: maybe_header(a, hex(n)) for n, a in zip(numbers, answers, strict=True)}
