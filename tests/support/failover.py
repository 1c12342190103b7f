"""One chain behind several endpoints, for issue 18's failover on real nodes.

Each endpoint is a :class:`tests.support.faultproxy.FaultProxy` in front of the same
anvil, so they agree on every block and differ only in the faults a test
switches on (killed, hanging, lagging, rate-limited, load-balanced onto a
backend that never saw the filter). Each gets a URL with an API-key-looking
path segment, as hosted endpoints have, so the tests can check that logs and
``health()`` show it masked and never in clear. A second anvil with the same
chain id but a chain of its own is the wrong network behind a right-looking
URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import secrets
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from unittest import mock

import httpx
import pytest

from ogpu import ChainConfig
from ogpu.chain import mask_url
from ogpu.events import AttemptedEvent, EndpointHealth, StreamHealth, health, watch_attempted
from ogpu.events._devnode.nodes import Anvil
from ogpu.events._net import endpoints as _endpoints
from ogpu.events._net.rpc import RpcClient
from tests.support.devnodes import Emitter, random_address
from tests.support.fakenode import NEXUS
from tests.support.faultproxy import FaultProxy
from tests.support.streams import Collector, wait_until

__all__ = [
    "EMIT_EVERY",
    "POLL",
    "Endpoint",
    "Run",
    "endpoint_health",
    "endpoints",
    "foreign_anvil",
    "leaked_filters",
    "said",
    "secrets_shown",
    "short_request_timeout",
    "state_of",
    "switches",
    "the_stream",
    "wait_state",
]


class Endpoint:
    """A proxy in front of the node, and the URL the stream is given for it."""

    def __init__(self, proxy: FaultProxy, name: str) -> None:
        self.proxy = proxy
        self.name = name
        # A hosted endpoint's look: the key in the path, which logs must mask.
        self.secret = f"{name}key{secrets.token_hex(10)}"
        self.url = f"{proxy.url}/v3/{self.secret}"
        self.masked = mask_url(self.url)
        assert self.secret not in self.masked

    def __repr__(self) -> str:
        return f"<Endpoint {self.name} {self.masked}>"

    @property
    def polls(self) -> int:
        """Filter polls and log reads this endpoint answered: what following the stream costs."""
        calls = self.proxy.calls
        return calls["eth_getFilterChanges"] + calls["eth_getLogs"]


@contextlib.asynccontextmanager
async def endpoints(upstream: str, *names: str) -> AsyncIterator[list[Endpoint]]:
    """One started proxy in front of ``upstream`` per name, closed on exit."""
    async with contextlib.AsyncExitStack() as stack:
        proxies = [await stack.enter_async_context(FaultProxy(upstream, seed=i)) for i in range(len(names))]
        yield [Endpoint(proxy, name) for proxy, name in zip(proxies, names, strict=True)]


@contextlib.contextmanager
def short_request_timeout(seconds: float) -> Iterator[None]:
    """Streams started inside give each endpoint's client this timeout (10 s by default).

    An endpoint that never answers costs the stream one timeout before it moves
    on; a short one keeps such a scenario short. The pool builds its clients by
    calling ``RpcClient`` in ``_net/endpoints.py``: replacing that name is the seam.
    """
    short = functools.partial(RpcClient, timeout=httpx.Timeout(seconds))
    with mock.patch.object(_endpoints, "RpcClient", short):
        yield


def foreign_anvil(chain_id: int = 1071) -> Anvil:
    """A started anvil with ``chain_id`` whose chain shares no block with another anvil's.

    Its genesis is dated 2001, so its blocks' hashes differ from the first on.
    """
    node = Anvil(chain_id=chain_id, extra_args=("--timestamp", "1000000000"))
    node.start()
    return node


async def leaked_filters(node_url: str, proxies: Iterable[FaultProxy]) -> list[str]:
    """Filters installed through ``proxies`` that the node still answers for (nobody uninstalled them)."""
    leaked: list[str] = []
    async with httpx.AsyncClient(timeout=10.0) as http:
        for proxy in proxies:
            for filter_id in proxy.installed:
                body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getFilterChanges", "params": [filter_id]}
                if "result" in (await http.post(node_url, json=body)).json():
                    leaked.append(filter_id)
    return leaked


def said(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    """The library's log lines at ``level`` or above."""
    return [r.getMessage() for r in caplog.records if r.name == "ogpu.events" and r.levelno >= level]


def switches(lines: Sequence[str], one: Endpoint, other: Endpoint) -> list[str]:
    """The lines that say the stream switched between two endpoints, either way, naming both masked.

    (Other lines may name both too: the list of endpoints a stream starts with.)
    """
    return [
        line
        for line in lines
        if one.masked in line and other.masked in line and re.search(r"\bswitch", line, re.IGNORECASE)
    ]


def secrets_shown(lines: Sequence[str], ends: Iterable[Endpoint]) -> list[str]:
    """The lines that show an endpoint's key in clear (should be none)."""
    keys = [end.secret for end in ends]
    return [line for line in lines if any(key in line for key in keys)]


POLL = 0.1
# The emitter's pace: anvil mines a block per event, so about 20 blocks a second.
EMIT_EVERY = 0.05


class Run:
    """``watch_attempted`` over ``ends`` from the current block on, while an emitter sends events.

    The emitter sends ``Attempted`` events of one fresh task straight to the
    node, each with its sequence number as the payment, so what the watcher
    yields can be compared with what was sent: :meth:`finish` returns both.
    """

    def __init__(
        self,
        node: Anvil,
        ends: Sequence[Endpoint],
        poll_interval: float = POLL,
        emit_every: float = EMIT_EVERY,
    ) -> None:
        self.node = node
        self.ends = ends
        self.poll_interval = poll_interval
        self.emit_every = emit_every
        self.task = random_address()
        self._collector: Collector[AttemptedEvent] | None = None
        self._emitter: Emitter | None = None
        self._sent: int | None = None

    async def __aenter__(self) -> Run:
        ChainConfig.set_rpc([end.url for end in self.ends])
        start = self.node.block_number() + 1
        stream = watch_attempted(self.task, from_block=start, poll_interval=self.poll_interval)
        self._collector = Collector(stream)
        self._emitter = Emitter(self.node, NEXUS, self.task, random_address(), self.emit_every)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._emitter is not None:
            self._emitter.stop()
        if self._collector is not None:
            await self._collector.stop()

    @property
    def delivered(self) -> list[int]:
        assert self._collector is not None
        return [event.suggested_payment for event in self._collector.events]

    async def more(self, count: int, timeout: float = 20.0) -> None:
        """Wait until ``count`` events sent from now on have arrived too."""
        assert self._collector is not None and self._emitter is not None
        await self._collector.wait_for(self._emitter.count + count, timeout)

    async def finish(self, grace: float = 0.5) -> tuple[list[int], int]:
        """Stop sending, wait for everything sent (and ``grace`` more for repeats); (delivered, sent)."""
        assert self._collector is not None and self._emitter is not None
        sent = self._emitter.stop()
        await self._collector.wait_for(sent)
        await asyncio.sleep(grace)
        delivered = self.delivered
        await self._collector.stop()
        self._collector = None
        return delivered, sent


def the_stream() -> StreamHealth:
    """What ``ogpu.events.health()`` says of the one running stream."""
    streams = health()
    assert len(streams) == 1, streams
    return streams[0]


def endpoint_health(end: Endpoint) -> EndpointHealth:
    """What ``ogpu.events.health()`` says of ``end`` (by its masked URL) in the one running stream."""
    stream = the_stream()
    found = [e for e in stream.endpoints if e.url == end.masked]
    assert len(found) == 1, (end.masked, [e.url for e in stream.endpoints])
    return found[0]


def state_of(end: Endpoint) -> str:
    return endpoint_health(end).state


async def wait_state(end: Endpoint, state: str, timeout: float = 60.0) -> None:
    # A give-up bound, not a timing: a standby is probed once per dozen requests,
    # which on a loaded 2-core machine can take a good part of 20 s.
    await wait_until(lambda: state_of(end) == state, f"{end.name} to be {state}", timeout)
