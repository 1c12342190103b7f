"""What a failed RPC call means, and how long to wait before the next try.

One place decides which faults are worth retrying, so the stream and the
history reader treat the same error the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import re
import time
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from ogpu._errors import (
    ChainChangedError,
    RpcError,
    RpcHttpError,
    RpcProtocolError,
    RpcResponseError,
    RpcTransportError,
    UnsupportedNodeError,
)

__all__ = [
    "NOT_JSONRPC_DEADLINE",
    "STARTUP_DEADLINE",
    "STARTUP_RETRY",
    "UNREACHABLE_DEADLINE",
    "Backoff",
    "Fault",
    "Retrier",
    "classify",
    "current_failures",
    "describe",
    "startup_deadline",
    "startup_deadline_within",
    "suggested_span",
]

log = logging.getLogger("ogpu.events")

# The LogRecord attribute that is True on a retry before the endpoint ever answered.
STARTUP_RETRY = "ogpu_startup_retry"
# Until an endpoint has answered once, a fault that lasts this long is taken
# for misconfiguration (wrong URL, nothing listening) and raised. The kinds
# of fault below give up sooner: each says more plainly that nobody is there.
STARTUP_DEADLINE = 10.0
# Another start-up deadline for one caller and the tasks it starts (the
# command's OGPU_STARTUP_DEADLINE); None: STARTUP_DEADLINE. A context
# variable, not a global: a stream opened elsewhere in the process keeps 10 s.
_startup_override: ContextVar[float | None] = ContextVar("ogpu_startup_deadline", default=None)
# Refused or unresolvable: retried briefly only, for a node that is still
# starting (a devnode launched beside the watcher).
UNREACHABLE_DEADLINE = 1.5
# Something answered, but not JSON-RPC (an HTML page, HTTP 501, a 5xx from a
# proxy): a gateway warming up gets a few seconds, a wrong URL no more.
NOT_JSONRPC_DEADLINE = 3.0


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
    r"|too many (results|blocks|logs)|response size|exceed|limited to|range limit|query timeout"
    r"|max(imum)?\s+(block\s+)?range|blocks? distance",
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
_NUMBER = r"(\d[\d,]*)"
# How providers name their block cap, most specific first: a message can name
# the range asked for too ("block range = 5120, max block range = 5000",
# "range 1000000 exceeds limit of 10000"), and that number is not the cap.
_BLOCK_CAPS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"max(?:imum)?\s*(?:block\s*)?range\D{0,6}?" + _NUMBER + r"(?!\s*[kK]?\s*(?:results|logs))",
        r"limit(?:ed to)?(?:\s+of)?(?:\s+a)?\s*:?\s*" + _NUMBER + r"(\s*[kK])?(?!\s*(?:results|logs))",
        r"blocks? distance\D{0,3}" + _NUMBER,  # Ankr: "maximum [from, to] blocks distance: 10000"
        _NUMBER + r"\s*([kK])?\s*-?\s*blocks?\b",
        r"block range[^0-9\[]*" + _NUMBER,
    )
]


def suggested_span(message: str) -> int | None:
    """The number of blocks a provider's range error says it will accept, if it says."""
    match = _SUGGESTED_RANGE.search(message)
    if match:
        first, last = (int(v, 0) for v in match.groups())
        return max(1, last - first + 1) if last >= first else None
    for pattern in _BLOCK_CAPS:
        match = pattern.search(message)
        if match:
            thousands = len(match.groups()) > 1 and match.group(2)
            return int(match.group(1).replace(",", "")) * (1000 if thousands else 1) or None
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


def startup_deadline(exc: BaseException) -> float:
    """How long a fault may last, from its first occurrence, before an endpoint
    that has never answered is given up on.

    A timeout gets no retry at all: waiting for it already took the whole
    time the caller allowed for an answer.
    """
    limit = _startup_override.get()
    longest = STARTUP_DEADLINE if limit is None else limit
    if isinstance(exc, RpcTransportError):
        if exc.unreachable:
            return min(UNREACHABLE_DEADLINE, longest)
        if exc.timed_out:
            return 0.0
    if isinstance(exc, RpcProtocolError) or (isinstance(exc, RpcHttpError) and exc.status != 429):
        return min(NOT_JSONRPC_DEADLINE, longest)
    return longest


@contextlib.contextmanager
def startup_deadline_within(seconds: float) -> Iterator[None]:
    """Within the block, ``seconds`` replaces ``STARTUP_DEADLINE`` for this task and the tasks it starts."""
    token = _startup_override.set(seconds)
    try:
        yield
    finally:
        _startup_override.reset(token)


def describe(exc: BaseException) -> str:
    """What went wrong, in words, without the ``(method at url)`` tail ``str`` adds."""
    if isinstance(exc, RpcResponseError):
        return f"JSON-RPC error {exc.code}: {exc.args[0]}"
    if isinstance(exc, RpcError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


# Retriers between a failure and the next success: lets a caller that is only
# waiting (the command's --timeout) tell a quiet chain from a failing node.
_failing: weakref.WeakSet[Retrier] = weakref.WeakSet()


def current_failures() -> list[BaseException]:
    """The latest error of every caller that is retrying right now; empty when none is."""
    return [retrier.failure for retrier in list(_failing) if retrier.failure is not None]


class Retrier:
    """Backoff, a WARNING per retry, and the startup deadline, for one caller.

    ``answered`` tells whether the endpoint has ever given a well-formed
    JSON-RPC answer; until it has, faults are retried for a while that
    depends on their kind (:func:`startup_deadline`, at most
    ``STARTUP_DEADLINE`` seconds) and then raised instead of retried forever.
    Once it has answered, everything transient is retried, and each retry
    logged.
    """

    def __init__(
        self,
        answered: Callable[[], bool],
        url: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._answered = answered
        self._url = url
        self._clock = clock
        self.backoff = Backoff()
        self._failing_since: float | None = None
        # The error being retried, until the next success.
        self.failure: BaseException | None = None

    async def pause(self, exc: BaseException, doing: str) -> None:
        """Log ``exc`` and sleep before the next try, or raise it if it is time to give up.

        The log line names the call that failed (``exc.method``) when the
        exception carries one, so it reads ``eth_newFilter failed at ...``
        rather than naming whatever the caller was doing at large.
        """
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        delay = self.backoff.next_delay(exc)
        # Give up now rather than sleep past the deadline only to try once more.
        if not self._answered() and now + delay - self._failing_since > startup_deadline(exc):
            self.failure = None
            _failing.discard(self)
            raise exc
        self.failure = exc
        _failing.add(self)
        log.warning(
            "%s failed at %s (try %d): %s; retrying in %.2fs",
            _what(exc, doing),
            self._url,
            self.backoff.attempts,
            describe(exc),
            delay,
            # Marks the retries of an endpoint that has never answered: the
            # startup deadline at work, whose end a caller may report as one
            # error of its own (ogpu-events does) rather than show each try.
            extra={STARTUP_RETRY: not self._answered()},
        )
        await asyncio.sleep(delay)

    def succeeded(self) -> None:
        self.backoff.reset()
        self._failing_since = None
        self.failure = None
        _failing.discard(self)


_BATCH_SIZE = re.compile(r"batch of (\d+)")


def _what(exc: BaseException, doing: str) -> str:
    method = getattr(exc, "method", "")
    if not isinstance(method, str) or not method or doing.startswith(method):
        return doing  # "eth_getLogs 100..199" says more than "eth_getLogs"
    batch = _BATCH_SIZE.search(method)
    if batch:  # "poll (21 calls)": what the batch was for says more than its methods
        return f"{doing} ({batch.group(1)} calls)"
    return method
