"""One fault at a time, while events are being emitted: does every event arrive exactly once?

Used by ``tests/test_faults_anvil.py`` and ``scripts/fault_matrix.py``. A run
emits a few events before the watcher starts (so history, and the seam
between history and the live stream, are under fault too), then starts
``watch_attempted`` through a :class:`FaultProxy` while the rest are sent to
the node directly at a steady rate. Each event carries its sequence number as
``suggested_payment``, so loss, repetition and order can be read off what the
watcher yields.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import secrets
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import httpx

from ogpu import ChainConfig
from ogpu.events import AttemptedEvent, watch_attempted
from ogpu.events._devnode.nodes import EMITTER_CODE, event_calldata
from ogpu.events._net import endpoints as _endpoints
from ogpu.events._net.rpc import RpcClient
from tests.faultproxy import FILTER_METHODS, Fault, FaultProxy, Rule

__all__ = ["ISSUE8_SCENARIOS", "SCENARIOS", "Outcome", "Scenario", "run_scenario"]

_CHANGES = frozenset({"eth_getFilterChanges"})
_LOGS = frozenset({"eth_getLogs"})
# The stream reads its head as the latest block's header (eth_blockNumber before).
_HEAD = frozenset({"eth_getBlockByNumber"})
# Every way a stream asks for the head: the number, or the latest block itself.
_HEADS = frozenset({"eth_blockNumber", "eth_getBlockByNumber"})
_UNINSTALL = frozenset({"eth_uninstallFilter"})

# The log lines that show a recovery, with the block range it covers.
REFILL = r"refill from block \d+|refilling blocks \d+\.\.\d+"
# The one INFO line a provider's cap gets (issue 21.1): what was refused and what the reader does now.
SHRINK = r"refused eth_getLogs \d+\.\.\d+ \(.*\); (reading \d+-block chunks|looking for the largest range)"


@dataclasses.dataclass(frozen=True)
class Scenario:
    key: str
    name: str
    rules: tuple[Rule, ...]
    # A regular expression some "ogpu.events" record at INFO or above must match.
    expect_log: str | None
    # Client timeout for the run, for faults that answer too late.
    client_timeout: float | None = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    name: str
    sent: list[int]
    delivered: list[int]
    fired: int
    error: str | None
    seconds: float
    # Filters still installed on the node after the watcher left.
    leaked: int = 0

    @property
    def lost(self) -> int:
        return len(set(self.sent) - set(self.delivered))

    @property
    def repeated(self) -> int:
        return len(self.delivered) - len(set(self.delivered))

    @property
    def in_order(self) -> bool:
        return all(a < b for a, b in zip(self.delivered, self.delivered[1:], strict=False))


def _scenario(
    key: str, name: str, expect_log: str | None, *rules: Rule, client_timeout: float | None = None
) -> Scenario:
    return Scenario(key, name, rules, expect_log, client_timeout)


_FNF_CODES = (-32000, -32600, -32602, -32001)  # the codes nodes use for "filter not found"

SCENARIOS: tuple[Scenario, ...] = (
    _scenario("none", "no fault", None),
    _scenario(
        "drop-before",
        "connection dropped before forwarding (eth_getFilterChanges)",
        REFILL,
        Rule(Fault.DROP_BEFORE, _CHANGES, every=3, times=4),
    ),
    _scenario(
        "changes-answer-lost",
        "eth_getFilterChanges processed by the node, answer lost",
        REFILL,
        Rule(Fault.DROP_AFTER, _CHANGES, every=3, times=4),
    ),
    _scenario(
        "drop-after-any",
        "connection dropped after forwarding (any call)",
        REFILL,
        Rule(Fault.DROP_AFTER, every=4, times=5),
    ),
    _scenario(
        "timeout",
        "answer later than the client timeout (eth_getFilterChanges)",
        REFILL,
        Rule(Fault.DELAY, _CHANGES, every=4, times=2, delay=0.6),
        client_timeout=0.3,
    ),
    _scenario(
        "http-500",
        "HTTP 500 after the node processed the call",
        REFILL,
        Rule(Fault.HTTP_ERROR, _CHANGES, every=3, times=3, status=500),
    ),
    _scenario(
        "http-502-any",
        "HTTP 502 (any call)",
        REFILL,
        Rule(Fault.HTTP_ERROR, every=4, times=4, status=502),
    ),
    _scenario(
        "http-503",
        "HTTP 503 before the node saw the call",
        REFILL,
        Rule(Fault.HTTP_ERROR, _CHANGES, every=3, times=3, status=503, forward=False),
    ),
    _scenario(
        "http-429",
        "HTTP 429 with Retry-After: 1",
        r"HTTP 429.*retrying in (0\.9[5-9]|[1-9])",  # the wait is at least what the server asked
        Rule(Fault.RATE_LIMIT, every=5, times=2, retry_after="1"),
    ),
    _scenario(
        "garbled",
        "garbled body after the node answered",
        REFILL,
        Rule(Fault.GARBLE, _CHANGES, every=3, times=3),
    ),
    _scenario(
        "filter-not-found",
        "filter not found (node dropped it; codes -32000/-32600/-32602/-32001)",
        REFILL,
        Rule(Fault.FILTER_NOT_FOUND, _CHANGES, every=3, times=4, codes=_FNF_CODES),
    ),
    _scenario(
        "rate-limit-in-batch",
        "JSON-RPC rate-limit error on a header inside the poll batch",
        # On the latest header: the filter's answer beside it is a gap, refilled;
        # on a header that pins the chain: that block is asked for again next tick.
        REFILL + r"|eth_getBlockByNumber\S* failed at|could not check blocks",
        Rule(Fault.RPC_ERROR, _HEAD, every=4, times=4, code=-32005, message="rate limit exceeded"),
    ),
    _scenario(
        "changes-keep-failing",
        "eth_getFilterChanges failing over and over (internal error)",
        r"3 polls in a row failed.*refill from block \d+",
        Rule(Fault.RPC_ERROR, _CHANGES, skip=4, times=3, code=-32603, message="internal error"),
    ),
    _scenario(
        "no-filters",
        "node without filters (method not found)",
        r"offers no log filters",
        Rule(Fault.NO_FILTERS, FILTER_METHODS),
    ),
    _scenario(
        "filters-withdrawn",
        "filters withdrawn mid-stream",
        r"rejects eth_getFilterChanges",
        Rule(Fault.NO_FILTERS, frozenset({"eth_getFilterChanges", "eth_newFilter"}), skip=4),
    ),
    _scenario(
        "range-cap-plain",
        "eth_getLogs range capped, no range named",
        SHRINK,
        Rule(Fault.CAP_LOGS, _LOGS, max_blocks=2, style="plain"),
    ),
    _scenario(
        "range-cap-size",
        "eth_getLogs range capped, block count named",
        SHRINK,
        Rule(Fault.CAP_LOGS, _LOGS, max_blocks=3, style="size"),
    ),
    _scenario(
        "range-cap-range",
        "eth_getLogs range capped, block range named",
        SHRINK,
        Rule(Fault.CAP_LOGS, _LOGS, max_blocks=2, style="range"),
    ),
    _scenario(
        "result-cap-plain",
        "eth_getLogs result count capped, no range named",
        SHRINK,
        Rule(Fault.CAP_LOGS, _LOGS, max_results=2, style="plain"),
    ),
    _scenario(
        "result-cap-range",
        "eth_getLogs result count capped, block range named",
        SHRINK,
        Rule(Fault.CAP_LOGS, _LOGS, max_results=2, style="range"),
    ),
    _scenario(
        "head-lags",
        "head reported behind the real one now and then",
        r"node reported head \d+ below \d+",
        Rule(Fault.LAG_HEAD, _HEAD, every=3, lag=4),
    ),
    _scenario(
        "head-lags-at-install",
        "filter lost while the head lags at random",
        r"reading blocks \d+\.\.\d+ from eth_getLogs \(the install head may have lagged",
        Rule(Fault.FILTER_NOT_FOUND, _CHANGES, every=3, times=5),
        # From the third head on: the stream only knows to distrust the head
        # once it has seen it go backwards (see ogpu.events._stream.hub).
        Rule(Fault.LAG_HEAD, _HEAD, skip=2, probability=0.5, lag=4),
    ),
    _scenario(
        "lost-capped-lagging",
        "filter lost, refill capped, head lagging",
        REFILL,
        Rule(Fault.FILTER_NOT_FOUND, _CHANGES, every=4, times=4),
        Rule(Fault.CAP_LOGS, _LOGS, max_blocks=2, style="size"),
        Rule(Fault.LAG_HEAD, _HEAD, every=2, lag=3),
    ),
    _scenario(
        "no-filters-capped-dropped",
        "no filters, capped eth_getLogs, dropped answers",
        SHRINK,
        Rule(Fault.NO_FILTERS, FILTER_METHODS),
        Rule(Fault.CAP_LOGS, _LOGS, max_results=1, style="plain"),
        Rule(Fault.DROP_AFTER, _LOGS, every=5, times=3),
    ),
)


# Issue 8's losses that a proxy in front of anvil can express. Kept apart from
# SCENARIOS (which tests/test_faults_anvil.py runs on every `make test`) until
# the stream handles them; `make faults` runs both.
ISSUE8_SCENARIOS: tuple[Scenario, ...] = (
    _scenario(
        "null-filter-answer",
        "filter forgotten, hardhat-style {result: null} for it",
        None,
        Rule(Fault.NULL_FILTER, _CHANGES, skip=3, every=4, times=3),
    ),
    _scenario(
        "lag-one-at-install",
        "filter lost while every head answer lags one block",
        None,
        Rule(Fault.FILTER_NOT_FOUND, _CHANGES, skip=2, every=3, times=5),
        Rule(Fault.LAG_HEAD, _HEADS, lag=1),
    ),
    _scenario(
        "head-spike",
        "one head answer 1,000 blocks ahead, then lost answers",
        None,
        Rule(Fault.HEAD_SPIKE, _HEADS, skip=4, times=1, lag=1000),
        Rule(Fault.DROP_AFTER, _CHANGES, skip=8, every=3, times=3),
    ),
    _scenario(
        "foreign-log",
        "another contract's log (a Nexus topic) in a filter answer",
        None,
        Rule(Fault.FOREIGN_LOG, _CHANGES, every=2, times=4),
    ),
    _scenario(
        "logs-beyond-range",
        "eth_getLogs answering beyond toBlock",
        None,
        Rule(Fault.OVERREACH, _LOGS),
    ),
    _scenario(
        "uninstall-503",
        "a stale filter's eth_uninstallFilter refused once with HTTP 503",
        None,
        # Another backend says the filter is unknown; it is still installed here.
        Rule(Fault.RPC_ERROR, _CHANGES, skip=4, times=1, code=-32000, message="filter not found"),
        Rule(Fault.HTTP_ERROR, _UNINSTALL, times=1, status=503, forward=False),
    ),
)


@contextlib.contextmanager
def _client_timeout(seconds: float | None) -> Iterator[None]:
    """Give the stream's RPC client a short timeout, so late answers show up quickly."""
    if seconds is None:
        yield
        return
    # The hub builds its client (through open_client) with RpcClient's default
    # timeout, bound when the class was defined; replacing the name open_client
    # calls is the seam.
    short = functools.partial(RpcClient, timeout=httpx.Timeout(seconds))
    with mock.patch.object(_endpoints, "RpcClient", short):
        yield


async def _rpc(http: httpx.AsyncClient, url: str, method: str, *params: Any) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer = (await http.post(url, json=body)).json()
    if "error" in answer:
        raise RuntimeError(f"{method} failed: {answer['error']}")
    return answer["result"]


async def run_scenario(
    node_url: str,
    scenario: Scenario,
    *,
    events: int = 30,
    history: int = 5,
    interval: float = 0.02,
    poll_interval: float = 0.05,
    deadline: float = 20.0,
    grace: float = 0.3,
) -> Outcome:
    """Emit ``events`` events (``history`` of them before the watcher starts) under ``scenario``.

    Waits until all of them arrived or ``deadline`` seconds passed, then
    ``grace`` seconds more for repeats. Points ``ChainConfig`` at the proxy
    for the run and resets it afterwards.
    """
    started = time.monotonic()
    nexus = ChainConfig.get_contract_address("NEXUS")
    task = "0x" + secrets.token_hex(20)
    provider = "0x" + secrets.token_hex(20)
    base = secrets.randbelow(2**64) * 1000
    sent = [base + i for i in range(events)]
    delivered: list[int] = []
    all_in = asyncio.Event()

    async with httpx.AsyncClient(timeout=10.0) as http, FaultProxy(node_url) as proxy:
        await _rpc(http, node_url, "anvil_setCode", nexus, EMITTER_CODE)
        account = (await _rpc(http, node_url, "eth_accounts"))[0]

        async def emit(seq: int) -> None:
            data = event_calldata("Attempted", task, provider, seq)
            tx = {"from": account, "to": nexus, "data": data, "gas": "0x30000"}
            await _rpc(http, node_url, "eth_sendTransaction", tx)

        async def emit_live() -> None:
            for seq in sent[history:]:
                await asyncio.sleep(interval)
                await emit(seq)

        async def consume() -> None:
            stream = watch_attempted(task, from_block=first_block, poll_interval=poll_interval)
            async with contextlib.aclosing(stream):
                async for event in stream:
                    assert isinstance(event, AttemptedEvent)
                    delivered.append(event.suggested_payment)
                    if len(set(delivered)) >= events:
                        all_in.set()

        first_block = int(await _rpc(http, node_url, "eth_blockNumber"), 16) + 1
        for seq in sent[:history]:
            await emit(seq)

        proxy.add(*(dataclasses.replace(rule) for rule in scenario.rules))
        ChainConfig.set_rpc(proxy.url)
        error: str | None = None
        with _client_timeout(scenario.client_timeout):
            consumer = asyncio.get_running_loop().create_task(consume(), name="fault scenario consumer")
            emitter = asyncio.get_running_loop().create_task(emit_live(), name="fault scenario emitter")
            try:
                await emitter
                # The consumer only ends early by failing: stop waiting then too.
                consumer.add_done_callback(lambda _: all_in.set())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(all_in.wait(), deadline)
                if not consumer.done():
                    await asyncio.sleep(grace)  # time for a repeat to show up
            finally:
                fired = proxy.fired
                proxy.clear()  # let the watcher's teardown reach the node undisturbed
                for job in (emitter, consumer):
                    job.cancel()
                for job in (emitter, consumer):
                    with contextlib.suppress(asyncio.CancelledError):
                        try:
                            await job
                        except Exception as exc:
                            error = f"{type(exc).__name__}: {exc}"
                ChainConfig.reset_rpc()
        leaked = 0
        for filter_id in sorted(proxy.filters):
            # A filter the node still answers for was never uninstalled.
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getFilterChanges", "params": [filter_id]}
            if "result" in (await http.post(node_url, json=body)).json():
                leaked += 1

    return Outcome(scenario.name, sent, delivered, fired, error, time.monotonic() - started, leaked)
