"""Failover figures (issue 18) for ``scripts/bench.py`` (``--failover`` prints them alone).

One anvil behind three endpoints (:class:`tests.support.faultproxy.FaultProxy`), in
order of preference; every figure counts or times what the endpoints saw.

- Requests per tick: watchers on distinct random tasks; every HTTP request
  the three endpoints received (the active one's polls and the standbys'
  probes) over whole ticks of the shared stream, divided by those ticks.
- Switch time: the active endpoint dies (connection refused: its listener
  closed and its connections cut; or no answer at all: requests taken and
  never answered), an event is sent at once (anvil mines it before the
  call returns), and the figure is the time from the death to the watcher
  yielding that event, read by another endpoint.
- Leaving a 429: the active endpoint starts answering every request with
  HTTP 429 and ``Retry-After: 30``; the figure is the time from its first
  429 to another endpoint answering the stream's request (the pool's
  serving endpoint).

Each switch figure is a fresh stream on fresh endpoints per sample, the
fault struck at a random moment of the poll interval; median and worst.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable

import httpx

from ogpu import ChainConfig
from ogpu.events import AttemptedEvent, watch_attempted
from ogpu.events._devnode.nodes import Anvil, event_calldata
from ogpu.events._net import rpc as _rpc
from ogpu.events._stream.hub import Hub, active_hubs
from tests.support.failover import Endpoint, endpoints
from tests.support.faultproxy import Fault, Rule

__all__ = ["FAILOVER_NOTES", "failover_figures"]

NEXUS = ChainConfig.get_contract_address("NEXUS", "mainnet")
WATCHER_COUNTS = (1, 10_000)
TICK_INTERVAL = 0.2
# Long enough for several rounds of the standbys' probes (a head read every few seconds).
MEASURED_TICKS = 100
SWITCH_POLL = 0.5
SWITCH_SAMPLES = 5
HANG_SAMPLES = 3

Figure = tuple[str, str, str, bool | None]


def request_timeout() -> float:
    """The request timeout the stream's clients use (what a dead-silent endpoint costs)."""
    read = _rpc.DEFAULT_TIMEOUT.read
    assert read is not None
    return read


FAILOVER_NOTES = f"""\
- failover, requests/tick: one anvil behind three local proxies given to ChainConfig.set_rpc in order;
  watch_attempted() on distinct random tasks, poll_interval {TICK_INTERVAL} s; every HTTP request the
  three proxies received (polls and probes) over {MEASURED_TICKS} whole ticks of the hub, divided by them,
  once all watchers joined, the filter was proven and 3 more ticks passed. A probe comes every so many
  requests, so the window may hold one probe more than its share: 1/{MEASURED_TICKS} is allowed for that.
- failover, switch time: three endpoints, one watcher, poll_interval {SWITCH_POLL} s, the request timeout
  the stream's clients use ({request_timeout():g} s); the first endpoint dies at a random moment of
  the poll interval (refused: its listener closed and connections cut; silent: requests taken and
  never answered); an event is sent at once (anvil mines it before answering), timed from the death
  to the watcher yielding it. {SWITCH_SAMPLES} samples refused, {HANG_SAMPLES} silent, each on a fresh stream;
  median and worst. Target: 2 poll intervals + the request timeout.
- failover, leaving a 429: the same setup; the first endpoint answers every request with HTTP 429 and
  Retry-After: 30 from a random moment on; timed from its first 429 to the moment another endpoint
  has answered one of the stream's requests (the pool's serving endpoint changed, read every 5 ms);
  an event sent then must arrive. {SWITCH_SAMPLES} samples. Target: one poll interval.
"""


def _the_hub() -> Hub:
    hubs = active_hubs()
    if len(hubs) != 1:
        raise RuntimeError(f"expected one hub, found {len(hubs)}")
    return hubs[0]


async def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")
        await asyncio.sleep(0.005)


async def _ticks(hub: Hub, count: int) -> None:
    target = hub.ticks + count
    await _wait(lambda: hub.ticks >= target, 30.0 + count * 5.0, f"{count} ticks")


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await _wait(lambda: not active_hubs(), 60.0, "the hub to close")


class _Sender:
    def __init__(self, node: Anvil) -> None:
        self._node = node
        self._http = httpx.AsyncClient(timeout=30.0)

    async def attempted(self, task: str, payment: int) -> None:
        provider = "0x" + random.getrandbits(160).to_bytes(20, "big").hex()
        tx = {
            "from": self._node.account,
            "to": NEXUS,
            "data": event_calldata("Attempted", task, provider, payment),
            "gas": "0x30000",
        }
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction", "params": [tx]}
        answer = (await self._http.post(self._node.url, json=body)).json()
        if "error" in answer:
            raise RuntimeError(f"eth_sendTransaction failed: {answer['error']}")

    async def aclose(self) -> None:
        await self._http.aclose()


def _task(rng: random.Random) -> str:
    return f"0x{rng.getrandbits(160):040x}"


async def _requests_per_tick(node: Anvil, count: int, rng: random.Random) -> Figure:
    tasks = [_task(rng) for _ in range(count)]

    async def watcher(task: str) -> None:
        async for _ in watch_attempted(task, poll_interval=TICK_INTERVAL):
            pass

    sender = _Sender(node)
    async with endpoints(node.url, "a", "b", "c") as ends:
        ChainConfig.set_rpc([end.url for end in ends])
        runners = [asyncio.create_task(watcher(task)) for task in tasks]
        try:
            await _wait(lambda: bool(active_hubs()), 30.0, "the hub")
            hub = _the_hub()
            await _wait(lambda: hub.subscriber_count == count, 120.0, f"{count} watchers to join")
            await _wait(lambda: ends[0].proxy.calls["eth_getFilterChanges"] > 0, 30.0, "the filter")
            # A Nexus log nobody watches proves the filter; then the steady state.
            await sender.attempted(_task(rng), 0)
            await _ticks(hub, 3)
            before = [end.proxy.requests for end in ends]
            ticks = hub.ticks
            for index in sorted({0, count - 1}):
                await sender.attempted(tasks[index], index)
            await _ticks(hub, MEASURED_TICKS)
            after = [end.proxy.requests for end in ends]
            measured = hub.ticks - ticks
        finally:
            await sender.aclose()
            await _stop(runners)
    sent = [b - a for a, b in zip(before, after, strict=True)]
    per_tick = sum(sent) / measured
    # Probes come one per so many requests: a window may hold one more or one
    # less than its share, depending on where its edges fall.
    edge = 1 / measured
    return (
        f"failover: requests/tick, 3 endpoints, {count:,} watcher{'s' if count > 1 else ''}",
        f"{per_tick:.3f} ({measured} ticks; active {sent[0]}, standbys {sent[1]} and {sent[2]})",
        f"<= 1.1 (+{edge:.3f} at the window's edges)",
        per_tick <= 1.1 + edge,
    )


async def _steady_stream(
    node: Anvil, ends: list[Endpoint], rng: random.Random
) -> tuple[list[asyncio.Task[None]], asyncio.Queue[tuple[float, int]], _Sender, str]:
    """One watcher over ``ends``, on the first of them, with its first event delivered."""
    ChainConfig.set_rpc([end.url for end in ends])
    task = _task(rng)
    arrivals: asyncio.Queue[tuple[float, int]] = asyncio.Queue()

    async def watcher() -> None:
        async for event in watch_attempted(task, poll_interval=SWITCH_POLL):
            assert isinstance(event, AttemptedEvent)
            arrivals.put_nowait((time.perf_counter(), event.suggested_payment))

    runner = asyncio.create_task(watcher())
    sender = _Sender(node)
    await _wait(lambda: bool(active_hubs()) and _the_hub().subscriber_count == 1, 30.0, "the watcher")
    await _wait(lambda: ends[0].proxy.calls["eth_getFilterChanges"] > 0, 30.0, "the filter")
    await sender.attempted(task, 0)
    _, first = await asyncio.wait_for(arrivals.get(), 30.0)
    assert first == 0
    return [runner], arrivals, sender, task


async def _switch_time(node: Anvil, how: str, rng: random.Random) -> float:
    async with endpoints(node.url, "a", "b", "c") as ends:
        runners, arrivals, sender, task = await _steady_stream(node, ends, rng)
        try:
            polled = [end.polls for end in ends[1:]]
            await asyncio.sleep(rng.uniform(0.0, SWITCH_POLL))
            died = time.perf_counter()
            if how == "refused":
                await ends[0].proxy.kill()
            else:
                ends[0].proxy.hang = True
            await sender.attempted(task, 1)
            arrived, payment = await asyncio.wait_for(arrivals.get(), 120.0)
            if payment != 1 or [end.polls for end in ends[1:]] == polled:
                raise RuntimeError(f"event {payment} did not come from another endpoint")
        finally:
            await sender.aclose()
            ends[0].proxy.hang = False  # let the stream's teardown through
            await _stop(runners)
    return arrived - died


async def _leave_429(node: Anvil, rng: random.Random) -> float:
    async with endpoints(node.url, "a", "b", "c") as ends:
        runners, arrivals, sender, task = await _steady_stream(node, ends, rng)
        pool = _the_hub().pool
        assert pool is not None
        limited: list[float] = []
        limit = Rule(Fault.RATE_LIMIT, retry_after="30")

        def at_first(methods: list[str]) -> None:
            if limit in ends[0].proxy.rules:
                limited.append(time.perf_counter())

        ends[0].proxy.on_request = at_first
        try:
            await asyncio.sleep(rng.uniform(0.0, SWITCH_POLL))
            ends[0].proxy.add(limit)
            # The moment another endpoint answers one of the stream's own requests
            # (not a probe): the stream has left, whatever that request was.
            await _wait(lambda: pool.serving not in (None, 0), 60.0, "another endpoint to serve")
            left = time.perf_counter()
            await sender.attempted(task, 1)
            _, payment = await asyncio.wait_for(arrivals.get(), 60.0)
            if payment != 1 or not limited:
                raise RuntimeError("the stream did not move to another endpoint")
        finally:
            await sender.aclose()
            ends[0].proxy.clear()
            await _stop(runners)
    return left - limited[0]


def _spread(samples: list[float]) -> str:
    return f"median {statistics.median(samples):.2f} s, worst {max(samples):.2f} s"


async def _figures(node: Anvil) -> list[Figure]:
    rng = random.Random(18)
    figures = [await _requests_per_tick(node, count, rng) for count in WATCHER_COUNTS]
    bound = 2 * SWITCH_POLL + request_timeout()
    for how, samples in (("refused", SWITCH_SAMPLES), ("silent", HANG_SAMPLES)):
        times = [await _switch_time(node, how, rng) for _ in range(samples)]
        what = "connection refused" if how == "refused" else "no answer at all"
        figures.append(
            (
                f"failover: dead endpoint ({what}) to next event",
                f"{_spread(times)} ({samples} samples; worst {max(times) / SWITCH_POLL:.1f} poll intervals)",
                f"<= {bound:g} s",
                max(times) <= bound,
            )
        )
    leaves = [await _leave_429(node, rng) for _ in range(SWITCH_SAMPLES)]
    figures.append(
        (
            "failover: leaving an endpoint answering 429",
            f"{_spread(leaves)} ({SWITCH_SAMPLES} samples)",
            f"<= {SWITCH_POLL:g} s",
            max(leaves) <= SWITCH_POLL,
        )
    )
    return figures


def failover_figures() -> list[Figure]:
    """Every failover figure, on an anvil of its own."""
    with Anvil() as node:
        node.install_emitter(NEXUS)
        try:
            return asyncio.run(_figures(node))
        finally:
            ChainConfig.reset_rpc()
