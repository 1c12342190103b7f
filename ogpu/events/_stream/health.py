"""What ``ogpu.events.health()`` answers: each running stream, its endpoints, how far it is.

Plain frozen values, built from a stream's state at the moment of asking and
never updated after: a readiness check or a dashboard may keep one, compare
two, or send one across threads. No I/O here, and nothing that loads httpx.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ENDPOINT_STATES", "EndpointHealth", "StreamHealth", "endpoint_state"]

# Every state an endpoint can be in:
#   active    the stream reads the chain from it now
#   standby   healthy, kept for when the active one fails
#   cooling   its last request failed (an error, HTTP 429): waited out before the next try
#   lagging   its head is behind the other endpoints'
#   excluded  another chain (eth_chainId, or hashes that never meet the followed chain): never used
ENDPOINT_STATES = ("active", "standby", "cooling", "lagging", "excluded")


@dataclass(frozen=True)
class EndpointHealth:
    """One RPC endpoint of a stream, as the stream sees it.

    Attributes:
        url: the endpoint's URL, credentials masked.
        state: one of ``ENDPOINT_STATES``: ``"active"``, ``"standby"``,
            ``"cooling"``, ``"lagging"``, ``"excluded"``.
        head: the newest block the stream believes from it; None before
            its first answer.
        latency_s: seconds its last answered HTTP request took; None before one.
        last_error: what its failing request got, while it fails; None when
            its last request succeeded.
        answered: whether it has ever given a well-formed JSON-RPC answer
            (until then, a fault that lasts is taken for a wrong URL).
    """

    url: str
    state: str
    head: int | None
    latency_s: float | None
    last_error: str | None
    answered: bool


@dataclass(frozen=True)
class StreamHealth:
    """One running stream: every watcher of one event loop following one Nexus through one endpoint set.

    Attributes:
        chain_id: the chain it follows (the node's ``eth_chainId`` once
            read, the configured chain's until then).
        endpoints: its endpoints, the one in use first.
        cursor: every block up to this one has been read for every watcher
            (the lowest of its lanes' cursors); None until the stream has started.
        head: the newest block the stream believes; None before an answer.
        lag_blocks: ``head - cursor``: blocks believed but not read yet
            (with ``confirmations=N`` at least N); None while either is unknown.
        watchers: the watchers following it.
    """

    chain_id: int
    endpoints: tuple[EndpointHealth, ...]
    cursor: int | None
    head: int | None
    lag_blocks: int | None
    watchers: int


def endpoint_state(*, failing: bool) -> str:
    """The state of a stream's only endpoint: ``cooling`` while its last request failed, else ``active``."""
    return "cooling" if failing else "active"
