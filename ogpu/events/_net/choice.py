"""Which of several endpoints of one chain a stream talks to: decisions only, no I/O.

``EndpointChooser`` is fed what the pool saw (an answer and the head it
showed, a failure and its kind, a wrong chain) with the time it saw it, and
says which endpoint is active, in what order a request tries the others, and
which standbys are due for a probe. Keeping it free of I/O lets every rule be
a row in a table test.

The rules, in order of preference of the endpoints as the user listed them:

* The active endpoint is the most preferred *healthy* one: verified to be
  on the pinned chain, not cooling after a failure, its head known and not
  behind. While it stays healthy it stays active.
* A failure cools an endpoint: ``Retry-After`` for as long as the server
  asks (that endpoint only, never the stream), otherwise 1 s doubling per
  failure in a row up to 30 s. A cooled endpoint is healthy again only after
  it answered a probe or a request: time alone proves nothing.
* Behind: its head trails the best head another endpoint showed by more than
  ``max_lag`` blocks, or it has not moved for ``stall_after`` seconds while
  another endpoint showed a higher one since. An active endpoint is left
  when behind; a preferred one is gone back to only once it is current
  (within one block of the best), so that two endpoints a few blocks apart
  are not switched between every tick.
* Probes (a head read) cost requests the node pays for, so steady state
  probes one standby every ``probe_every`` requests (or ``probe_period``
  seconds, whichever comes first): with a 2 s poll that is one probe per
  twelve ticks, whatever the number of endpoints (1.08 requests per tick,
  under the 1.1 the issue allows; each of two standbys is asked every 48 s). An endpoint whose cool-down
  just ended, or never verified, is probed at once. The stall rule compares
  with these regular probes' heads: a stalled active is found within
  ``stall_after`` plus one round of probes, and a quiet chain (every head
  still) costs no extra probe.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["EndpointChooser", "EndpointState", "State"]

# Consecutive failures double the cool-down from this, up to the cap.
COOL_BASE = 1.0
COOL_CAP = 30.0
# A server's Retry-After is honoured up to this (the Backoff's own limit).
RETRY_AFTER_CAP = 300.0
MAX_LAG = 3
STALL_AFTER = 20.0
PROBE_EVERY = 12
PROBE_PERIOD = 30.0
# Latency is smoothed over a few answers: one slow answer is not the endpoint.
_LATENCY_WEIGHT = 0.3


class State(enum.Enum):
    ACTIVE = "active"
    STANDBY = "standby"
    COOLING = "cooling"
    LAGGING = "lagging"
    EXCLUDED = "excluded"


@dataclass
class EndpointState:
    """What the chooser knows of one endpoint (owned by the chooser; read by health())."""

    index: int
    name: str  # masked URL
    verified: bool = False
    excluded: str | None = None  # why, once excluded (for good)
    head: int | None = None
    top: int | None = None  # the highest head it showed (a balancer's heads bounce) ...
    top_at: float | None = None  # ... last shown at this time
    head_at: float | None = None
    moved_at: float | None = None  # when its head last rose
    behind: int = 0  # blocks below the best head known when its head was seen
    cool_until: float = 0.0
    server_cooled: bool = False  # the cool-down is the server's Retry-After
    failures: int = 0  # in a row
    proven: bool = True  # False from a failure until an answer
    latency_s: float | None = None
    last_error: str | None = None  # while failing (or why excluded); None once it answers
    answered: int = 0  # answers received (requests and probes)
    probed_at: float | None = None


class EndpointChooser:
    """Decides which endpoint is active and when to probe the others (see the module docstring)."""

    def __init__(
        self,
        names: list[str],
        *,
        max_lag: int | None = None,
        stall_after: float | None = None,
        probe_every: int | None = None,
        probe_period: float | None = None,
    ) -> None:
        if not names:
            raise ValueError("an endpoint chooser needs at least one endpoint")
        self.endpoints = [EndpointState(i, name) for i, name in enumerate(names)]
        # The module's values, read now (not at import) so a test can set them.
        self.max_lag = MAX_LAG if max_lag is None else max_lag
        self.stall_after = STALL_AFTER if stall_after is None else stall_after
        self.probe_every = PROBE_EVERY if probe_every is None else probe_every
        self.probe_period = PROBE_PERIOD if probe_period is None else probe_period
        self.active_index: int | None = None
        self._requests_since_probe = 0
        self._last_probe_at: float | None = None
        self._next_standby = 0  # round robin over standbys for steady-state probes

    # --- observations ---

    def verified(self, i: int) -> None:
        self.endpoints[i].verified = True

    def exclude(self, i: int, why: str) -> None:
        self.endpoints[i].excluded = why
        self.endpoints[i].last_error = why
        if self.active_index == i:
            self.active_index = None

    def answered(self, i: int, now: float, latency: float | None = None, head: int | None = None) -> None:
        """Endpoint ``i`` answered a request or probe; ``head`` if the answer showed its latest block."""
        e = self.endpoints[i]
        e.answered += 1
        e.failures = 0
        e.proven = True
        e.last_error = None
        e.server_cooled = False
        e.cool_until = min(e.cool_until, now)
        if latency is not None:
            e.latency_s = (
                latency if e.latency_s is None else e.latency_s + _LATENCY_WEIGHT * (latency - e.latency_s)
            )
        if head is not None:
            self._saw_head(e, head, now)

    def failed(self, i: int, now: float, error: str, retry_after: float | None = None) -> None:
        """Endpoint ``i`` failed (transport, 5xx, 429, garbage): it cools, and is not used until proven."""
        e = self.endpoints[i]
        e.failures += 1
        e.proven = False
        e.last_error = error
        if retry_after is not None:
            e.cool_until = now + min(max(retry_after, 0.0), RETRY_AFTER_CAP)
            e.server_cooled = True
        else:
            e.cool_until = now + min(COOL_CAP, COOL_BASE * 2 ** min(e.failures - 1, 16))
            e.server_cooled = False

    def probed(self, i: int, now: float) -> None:
        """A probe of ``i`` was sent (whatever comes of it): it is not due again for a while."""
        self.endpoints[i].probed_at = now
        self._last_probe_at = now
        self._requests_since_probe = 0

    def request_sent(self) -> None:
        self._requests_since_probe += 1

    def _saw_head(self, e: EndpointState, head: int, now: float) -> None:
        if e.head is None or head > e.head:
            e.moved_at = now
        e.head = head
        if e.top is None or head >= e.top:
            e.top, e.top_at = head, now
        e.head_at = now
        best = self.best_head(excluding=e.index)
        e.behind = 0 if best is None else max(0, best - head)

    # --- what follows from them ---

    def best_head(self, excluding: int | None = None) -> int | None:
        heads = [
            e.top
            for e in self.endpoints
            if e.top is not None and e.excluded is None and e.index != excluding and e.verified
        ]
        return max(heads, default=None)

    def usable(self, i: int, now: float) -> bool:
        """Verified (or still to verify), not excluded, not cooling."""
        e = self.endpoints[i]
        return e.excluded is None and now >= e.cool_until

    def stalled(self, i: int, now: float) -> bool:
        """Its head has not moved for ``stall_after`` while another endpoint showed a higher one since."""
        e = self.endpoints[i]
        if e.head is None or e.moved_at is None or now - e.moved_at < self.stall_after:
            return False
        return any(
            o.index != i
            and o.excluded is None
            and o.head is not None
            and o.head > e.head
            and o.head_at is not None
            and o.head_at - e.moved_at >= self.stall_after
            for o in self.endpoints
        )

    def healthy(self, i: int, now: float, *, lag: int | None = None) -> bool:
        e = self.endpoints[i]
        limit = self.max_lag if lag is None else lag
        return (
            self.usable(i, now)
            and e.verified
            and e.proven
            and e.head is not None
            and e.behind <= limit
            and not self.stalled(i, now)
        )

    def state(self, i: int, now: float) -> State:
        """What health() shows for endpoint ``i``."""
        e = self.endpoints[i]
        if e.excluded is not None:
            return State.EXCLUDED
        if i == self.active_index:
            return State.ACTIVE
        if not self.usable(i, now) or not e.proven:
            return State.COOLING
        if e.head is not None and (e.behind > self.max_lag or self.stalled(i, now)):
            return State.LAGGING
        return State.STANDBY

    def why_not(self, i: int, now: float) -> str:
        """Why endpoint ``i`` is not (or no longer) fit to be active, in words for a log line."""
        e = self.endpoints[i]
        if e.excluded is not None:
            return e.excluded
        if not self.usable(i, now) or not e.proven:
            return e.last_error or "failing"
        if self.stalled(i, now):
            return f"its head stays at block {e.head} while another endpoint's moved on"
        if e.behind > self.max_lag:
            return f"its head lags the best by {e.behind} blocks"
        return "a more preferred endpoint is healthy again"

    def choose(self, now: float) -> int | None:
        """The endpoint requests go to first: the most preferred healthy one, sticking while it stays so.

        A more preferred endpoint than the active one must be current (within
        one block of the best), not just within ``max_lag``, to win it back.
        None if no endpoint can be used right now (all cooling or excluded).
        """
        current = self.active_index
        for e in self.endpoints:
            if current is not None and e.index >= current:
                break
            if self.healthy(e.index, now, lag=1):
                self.active_index = e.index
                return e.index
        if current is not None and self.healthy(current, now):
            return current
        for e in self.endpoints:
            if self.healthy(e.index, now):
                self.active_index = e.index
                return e.index
        # Nothing healthy: the usable one with the highest head, else the first usable.
        usable = [e for e in self.endpoints if self.usable(e.index, now) and e.proven]
        if not usable:
            usable = [e for e in self.endpoints if self.usable(e.index, now)]
        if not usable:
            self.active_index = None
            return None
        if current is not None and any(e.index == current for e in usable):
            return current
        best = max(usable, key=lambda e: (e.verified, -1 if e.head is None else e.head, -e.index))
        self.active_index = best.index
        return best.index

    def order(self, now: float) -> list[int]:
        """The endpoints a request tries, in turn: the active, then the healthy, then any usable.

        Cooling endpoints are left out; if that leaves none, those cooled by
        our own rule (not a server's Retry-After) are tried anyway, most
        preferred first, since a stream with nothing to try can only wait.
        """
        first = self.choose(now)
        rest = [e.index for e in self.endpoints if e.index != first and self.usable(e.index, now)]
        rest.sort(key=lambda i: (not self.healthy(i, now), not self.endpoints[i].proven, i))
        tried = ([first] if first is not None else []) + rest
        if tried:
            return tried
        return [e.index for e in self.endpoints if e.excluded is None and not e.server_cooled]

    def wait_hint(self, now: float) -> float | None:
        """Seconds until the first server-imposed cool-down ends (None if nothing is server-cooled)."""
        waits = [e.cool_until - now for e in self.endpoints if e.excluded is None and e.server_cooled]
        return max(0.0, min(waits)) if waits else None

    def probes_due(self, now: float) -> list[int]:
        """Standbys to probe now (see the module docstring for how often)."""
        active = self.active_index
        others = [e for e in self.endpoints if e.excluded is None and e.index != active]
        due: list[int] = []
        for e in others:
            if not self.usable(e.index, now):
                continue
            if not e.verified or (not e.proven and (e.probed_at is None or e.probed_at < e.cool_until)):
                due.append(e.index)  # never verified, or cooled off and not yet asked again
        if due:
            return sorted(set(due))
        regular = self._requests_since_probe >= self.probe_every or (
            self._last_probe_at is not None and now - self._last_probe_at >= self.probe_period
        )
        candidates = [e.index for e in others if self.usable(e.index, now)]
        if not regular or not candidates:
            return []
        pick = min(candidates, key=lambda i: ((i - self._next_standby) % len(self.endpoints), i))
        self._next_standby = (pick + 1) % len(self.endpoints)
        return [pick]
