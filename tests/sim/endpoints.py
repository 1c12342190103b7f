"""The multi-endpoint family of the simulation: several URLs in front of one chain, each failing its own way.

A seed at or above ``ENDPOINT_SEEDS_FROM`` gives its stream two to four
endpoints (``ChainConfig.set_rpc([...])``), each a ``SimFront`` over the
seed's one ``SimNode``: the same chain, reached by another way, with a role
drawn from the seed:

* ``plain``: a node that only suffers the faults thrown at it;
* ``dies``: refuses connections (or swallows requests until they time out)
  for a while, then comes back restarted: the filters it held are gone;
* ``lags``: its head trails the chain by k blocks, and it knows nothing
  above it: eth_getLogs answers ``[]`` for blocks it has not reached (the
  hazard a failover must not believe);
* ``rate-limits``: answers HTTP 429 with ``Retry-After`` for a while;
* ``erigon``: answers ``[]`` to a poll of a filter it does not know;
* ``balanced``: a load balancer over two backends, one a block or two
  behind, each knowing only the filters made on it.

Endpoint faults are thrown at random steps (``ENDPOINT_FAULTS``) beside the
node's own; the oracle is the same, and every front's filters count: none
may be left installed on any endpoint at the end.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import httpx

from tests.sim.node import SimNode

__all__ = [
    "ENDPOINT_FAULTS",
    "ENDPOINT_SEEDS_FROM",
    "ROLES",
    "SimFront",
    "is_endpoint_seed",
    "make_fronts",
    "throw",
]

# Seeds from here on run this family: a seed number says everything about a run.
ENDPOINT_SEEDS_FROM = 1_000_000
ROLES = ("plain", "dies", "lags", "rate-limits", "erigon", "balanced")
ENDPOINT_FAULTS: dict[str, float] = {
    "endpoint-down": 6,  # refuses connections (or never answers) for a while, comes back restarted
    "endpoint-lag": 5,  # one endpoint's head falls 1-8 blocks behind for a while
    "endpoint-429": 5,  # one endpoint answers 429 with Retry-After for a while
    "endpoint-5xx": 3,  # one endpoint answers 503 for a while
}
_FILTER_POLLS = ("eth_getFilterChanges", "eth_uninstallFilter")


def is_endpoint_seed(seed: int) -> bool:
    return seed >= ENDPOINT_SEEDS_FROM


class SimFront(httpx.AsyncBaseTransport):
    """One endpoint in front of the shared ``SimNode`` (see the module docstring)."""

    def __init__(self, node: SimNode, url: str, role: str, net: random.Random) -> None:
        self.node = node
        self.url = url
        self.role = role
        self._net = net
        self.down: str | None = None  # "refused" or "silent" while down
        self.lag = 0
        self.status: int | None = None
        self.retry_after = 0
        self.backends = 2 if role == "balanced" else 1
        self.backend_lag = [0, 0] if role != "balanced" else [0, net.choice([1, 2])]
        # filter id -> the backend that made it: a filter lives where it was made.
        self.filters: dict[str, int] = {}
        # Filters whose eth_uninstallFilter the stream sent while this endpoint
        # refused everything (down, 429, 503): it asked; the endpoint expires them.
        self.misrouted_uninstalls: set[str] = set()
        self.refused_uninstalls: set[str] = set()
        # Whether a running stream has had an answer: a request that times out
        # before one is taken for a wrong URL (README), so silence is then a refusal.
        self.answered: Callable[[], bool] = lambda: True

    # --- what the schedule does to it ---

    def restart(self) -> None:
        """Back from the dead: the filters it held are gone from the node."""
        for filter_id in self.filters:
            self.node.filters.pop(filter_id, None)
        self.filters.clear()

    def calm(self) -> None:
        if self.down is not None:
            self.down = None
            self.restart()
        self.lag = 0
        self.status = None

    # --- serving ---

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        node = self.node
        body = await request.aread()
        await asyncio.sleep(self._net.uniform(*node.latency))
        node.transcript.append(f"{node._clock():.6f} {self.url} ".encode() + body)
        if self.down is not None or self.status is not None:
            self._note_refused_uninstalls(json.loads(body))
        if self.down == "silent" and self.answered():
            await asyncio.sleep(self._net.uniform(1.0, 10.0))
            raise httpx.ReadTimeout("the answer never arrived", request=request)
        if self.down == "refused" or self.down == "silent":
            await asyncio.sleep(self._net.uniform(*node.latency))
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except ConnectionRefusedError as refused:
                raise httpx.ConnectError("connection refused", request=request) from refused
        status = self.status  # as the request arrived: the fault may end while it is answered
        if status is not None:
            await asyncio.sleep(self._net.uniform(*node.latency))
            headers = {"Retry-After": str(self.retry_after)} if status == 429 else {}
            return httpx.Response(status, text="unavailable", headers=headers)
        try:
            response = self._serve(request, json.loads(body))
        except httpx.TimeoutException:
            await asyncio.sleep(self._net.uniform(1.0, 10.0))
            raise
        except Exception:
            await asyncio.sleep(self._net.uniform(*node.latency))
            raise
        await asyncio.sleep(self._net.uniform(*node.latency))
        return response

    def _serve(self, request: httpx.Request, body: Any) -> httpx.Response:
        backend = self._net.randrange(self.backends)
        items = body if isinstance(body, list) else [body]
        local: dict[int, dict[str, Any]] = {}
        forward: list[Any] = []
        for k, item in enumerate(items):
            if isinstance(item, dict) and item.get("method") in _FILTER_POLLS:
                params = item.get("params") or [""]
                if self.filters.get(str(params[0])) != backend:
                    local[k] = self._unknown_filter(item)
                    continue
            forward.append(item)
        answers: list[Any] = []
        if forward:
            sent = forward if isinstance(body, list) else forward[0]
            # Never below block 0: a young chain is simply not reached yet.
            lag = min(self.lag + self.backend_lag[backend], self.node.head)
            if lag:
                self.node.behind(lag, 1)  # this request only: it is served right here
            inner = httpx.Request("POST", request.url, content=json.dumps(sent).encode())
            response = self.node(inner)
            if response.status_code != 200:
                return response
            try:
                answer = response.json()
            except ValueError:
                return response  # a garbage fault's body
            answers = answer if isinstance(answer, list) else [answer]
            if isinstance(answer, list) != isinstance(sent, list) or len(answers) != len(forward):
                return response  # a whole-batch refusal or a fault's body: passed on as it is
            self._own(forward, answers, backend)
            if lag:
                self._hide_unreached(forward, answers, self.node.head - lag)
        merged: list[Any] = []
        rest = iter(answers)
        for k in range(len(items)):
            merged.append(local[k] if k in local else next(rest))
        if isinstance(body, list):
            return httpx.Response(200, json=merged)
        return httpx.Response(200, json=merged[0])

    def _note_refused_uninstalls(self, body: Any) -> None:
        for item in body if isinstance(body, list) else [body]:
            if isinstance(item, dict) and item.get("method") == "eth_uninstallFilter":
                filter_id = str((item.get("params") or [""])[0])
                if filter_id in self.filters:
                    self.refused_uninstalls.add(filter_id)

    def _unknown_filter(self, item: dict[str, Any]) -> dict[str, Any]:
        envelope: dict[str, Any] = {"jsonrpc": "2.0", "id": item.get("id")}
        if item.get("method") == "eth_uninstallFilter":
            filter_id = str((item.get("params") or [""])[0])
            if filter_id in self.filters:
                self.misrouted_uninstalls.add(filter_id)
            envelope["result"] = False
        elif self.role == "erigon":
            envelope["result"] = []
        else:
            envelope["error"] = {"code": -32000, "message": "filter not found"}
        return envelope

    def _own(self, items: list[Any], answers: list[Any], backend: int) -> None:
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        for item in items:
            answer = by_id.get(item.get("id")) if isinstance(item, dict) else None
            if answer is None:
                continue
            if item.get("method") == "eth_newFilter" and isinstance(answer.get("result"), str):
                self.filters[answer["result"]] = backend
            elif item.get("method") == "eth_uninstallFilter":
                self.filters.pop(str((item.get("params") or [""])[0]), None)

    @staticmethod
    def _hide_unreached(items: list[Any], answers: list[Any], head: int) -> None:
        """A node behind answers eth_getLogs with nothing of blocks it has not reached."""
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        for item in items:
            if not isinstance(item, dict) or item.get("method") != "eth_getLogs":
                continue
            answer = by_id.get(item.get("id"))
            if answer is not None and isinstance(answer.get("result"), list):
                answer["result"] = [
                    raw for raw in answer["result"] if int(str(raw.get("blockNumber", "0x0")), 16) <= head
                ]


def make_fronts(node: SimNode, seed: int, rng: random.Random) -> list[SimFront]:
    """Two to four endpoints, with roles drawn from the schedule's ``rng``."""
    count = rng.choice([2, 2, 3, 3, 3, 4])
    net = random.Random(f"fronts {seed}")
    roles = [rng.choice(ROLES) for _ in range(count)]
    fronts = [
        SimFront(node, f"http://127.0.0.1:{8600 + i}/sim-{seed}-ep{i}", role, net)
        for i, role in enumerate(roles)
    ]
    for front in fronts:
        if front.role == "lags":
            front.lag = rng.randint(1, 6)
        if not node.batch_supported:
            # A balancer that spreads even a head and a read of the same moment
            # over backends at different heights, one call per request, cannot
            # be checked by anyone: its backends are kept level.
            front.backend_lag = [0, 0]
    return fronts


def throw(
    kind: str, fronts: list[SimFront], rng: random.Random, later: Callable[[float, Callable[[], None]], None]
) -> str:
    """One endpoint fault on one front (roles make some fronts likelier); returns what was done."""
    # One endpoint at least stays healthy: with every one failing, a stream
    # that starts meanwhile is rightly taken for misconfigured (README), and
    # the family is about switching, not about that.
    healthy = [front for front in fronts if front.down is None and front.status is None]
    if len(healthy) < 2:
        return f"{kind}: skipped, one healthy endpoint left"
    weights = [3 if _suits(front.role, kind) else 1 for front in healthy]
    front = rng.choices(healthy, weights=weights)[0]
    lasting = rng.uniform(1.0, 25.0)
    if kind == "endpoint-down":
        front.down = rng.choice(["refused", "refused", "silent"])

        def back() -> None:
            front.down = None
            front.restart()

        later(lasting, back)
        return f"{front.url} down ({front.down}) for {lasting:.1f} s"
    if kind == "endpoint-lag":
        front.lag = rng.randint(1, 8)
        later(lasting, lambda: setattr(front, "lag", 0))
        return f"{front.url} lags {front.lag} blocks for {lasting:.1f} s"
    if kind == "endpoint-429":
        front.status, front.retry_after = 429, rng.choice([0, 1, 5, 30])
        later(lasting, lambda: setattr(front, "status", None))
        return f"{front.url} answers 429 (Retry-After {front.retry_after}) for {lasting:.1f} s"
    front.status = 503
    later(lasting, lambda: setattr(front, "status", None))
    return f"{front.url} answers 503 for {lasting:.1f} s"


def _suits(role: str, kind: str) -> bool:
    return (role, kind) in {
        ("dies", "endpoint-down"),
        ("lags", "endpoint-lag"),
        ("rate-limits", "endpoint-429"),
    }
