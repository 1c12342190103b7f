"""What a failed RPC call means, and how long to wait before the next try.

One place decides which faults are worth retrying, so the stream and the
history reader treat the same error the same way.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import re
import time
from collections.abc import Callable

from ogpu._errors import (
    ChainChangedError,
    RpcError,
    RpcHttpError,
    RpcProtocolError,
    RpcResponseError,
    RpcTransportError,
    UnsupportedNodeError,
)

__all__ = ["STARTUP_DEADLINE", "Backoff", "Fault", "Retrier", "classify", "suggested_span"]

log = logging.getLogger("ogpu.events")

# Until an endpoint has answered once, a fault that lasts this long is taken
# for misconfiguration (wrong URL, nothing listening) and raised.
STARTUP_DEADLINE = 10.0


class Fault(enum.Enum):
    TRANSIENT = "transient"  # retry the same thing after a backoff
    FILTER_LOST = "filter lost"  # recreate the filter, refill the gap from eth_getLogs
    UNSUPPORTED = "unsupported"  # the node does not offer this method
    RANGE_TOO_LARGE = "range too large"  # ask eth_getLogs for fewer blocks
    FATAL = "fatal"  # raise to the user


# "filter" as a word: "the method eth_newFilter does not exist" is a node
# without filters, not a lost one. Nethermind says "Filter with id: '5' does
# not exist.", Frontier "Filter id 22 does not exist.", geth "filter not found".
_FILTER_LOST = re.compile(
    r"\bfilter\b[^.;]{0,40}?\b(not found|does not exist|doesn't exist|(has )?expired)"
    r"|unknown filter|invalid filter|no filter",
    re.IGNORECASE,
)
_UNSUPPORTED = re.compile(
    r"method not found|not supported|unsupported|does not exist/is not available"
    r"|method .* (not available|disabled|not allowed)|is disabled",
    re.IGNORECASE,
)
_RATE_LIMITED = re.compile(
    r"rate.?limit|too many requests|request count|capacity|throttl|slow down", re.IGNORECASE
)
_RANGE = re.compile(
    r"more than \d+ results|block range|range (is )?too (large|wide|big)|max(imum)? is"
    r"|too many (results|blocks|logs)|response size|exceed|limited to|range limit|query timeout",
    re.IGNORECASE,
)
# A block the answering node does not have (yet, or any more: a restarted
# development node): the stream's head check sorts out which, so retry.
_BLOCK_NOT_THERE = re.compile(
    r"block height is \d+ but requested|header not found|unknown block|block not found"
    r"|beyond (the )?(current )?head|after last accepted block",
    re.IGNORECASE,
)
_FILTER_CODES = {-32000, -32600, -32602, -32001}
_CALLER_BUG_CODES = {-32700, -32600, -32602}


def classify(exc: BaseException) -> Fault:
    """Decide what a failed call means for whoever made it."""
    if isinstance(exc, UnsupportedNodeError | ChainChangedError):
        return Fault.FATAL
    if isinstance(exc, RpcTransportError | RpcProtocolError):
        return Fault.TRANSIENT
    if isinstance(exc, RpcHttpError):
        return Fault.TRANSIENT if exc.status == 429 or exc.status >= 500 else Fault.FATAL
    if isinstance(exc, RpcResponseError):
        message = exc.args[0] if exc.args else ""
        if _FILTER_LOST.search(message) and (exc.code in _FILTER_CODES or "filter" in message.lower()):
            return Fault.FILTER_LOST
        if exc.code == -32601 or _UNSUPPORTED.search(message):
            return Fault.UNSUPPORTED
        if exc.code == 429 or _RATE_LIMITED.search(message):
            return Fault.TRANSIENT
        if exc.code == -32005 or _RANGE.search(message):
            return Fault.RANGE_TOO_LARGE
        if _BLOCK_NOT_THERE.search(message):
            return Fault.TRANSIENT
        if exc.code in _CALLER_BUG_CODES:
            return Fault.FATAL
        return Fault.TRANSIENT  # -32000 "header not found" and friends: a node catching up
    if isinstance(exc, RpcError):
        return Fault.TRANSIENT
    return Fault.FATAL


_SUGGESTED_RANGE = re.compile(r"\[\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*\]")
_BLOCK_COUNT = re.compile(r"(\d+)\s*([kK])?\s*-?\s*blocks?\b|block range[^0-9\[]*(\d+)", re.IGNORECASE)


def suggested_span(message: str) -> int | None:
    """The number of blocks a provider's range error says it will accept, if it says."""
    match = _SUGGESTED_RANGE.search(message)
    if match:
        first, last = (int(v, 0) for v in match.groups())
        return max(1, last - first + 1) if last >= first else None
    match = _BLOCK_COUNT.search(message)
    if match:
        if match.group(1):
            return int(match.group(1)) * (1000 if match.group(2) else 1)
        return int(match.group(3))
    return None


class Backoff:
    """Capped exponential backoff with jitter, reset after a success.

    Jitter keeps many processes that failed together from retrying together.
    A server's ``Retry-After`` wins when it asks for longer.
    """

    def __init__(
        self,
        base: float = 0.25,
        cap: float = 15.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.base = base
        self.cap = cap
        self.attempts = 0
        self._rng = rng

    def next_delay(self, exc: BaseException | None = None) -> float:
        # The exponent is bounded: 2**1024 no longer fits a float, and an outage
        # of hours reaches that many tries.
        ceiling = min(self.cap, self.base * 2 ** min(self.attempts, 64))
        self.attempts += 1
        delay: float = ceiling / 2 + self._rng() * ceiling / 2
        if isinstance(exc, RpcHttpError) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, 300.0))
        return delay

    def reset(self) -> None:
        self.attempts = 0


class Retrier:
    """Backoff, a WARNING per retry, and the startup deadline, for one caller.

    ``answered`` tells whether the endpoint has ever given a well-formed
    JSON-RPC answer; until it has, faults lasting ``STARTUP_DEADLINE``
    seconds are raised instead of retried forever.
    """

    def __init__(self, answered: Callable[[], bool], url: str) -> None:
        self._answered = answered
        self._url = url
        self.backoff = Backoff()
        self._failing_since: float | None = None

    async def pause(self, exc: BaseException, doing: str) -> None:
        """Log ``exc`` and sleep before the next try, or raise it if it is time to give up."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if not self._answered() and now - self._failing_since >= STARTUP_DEADLINE:
            raise exc
        delay = self.backoff.next_delay(exc)
        log.warning(
            "%s failed at %s (try %d): %s; retrying in %.2fs",
            doing,
            self._url,
            self.backoff.attempts,
            exc,
            delay,
        )
        await asyncio.sleep(delay)

    def succeeded(self) -> None:
        self.backoff.reset()
        self._failing_since = None
