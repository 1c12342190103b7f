"""The watchers against an in-memory node: scoping, order, history, cleanup, bad input, node faults.

Every test that streams ends with a sentinel event mined last: a watcher has
seen everything before it once the sentinel arrives, so "exactly these events,
in this order" can be asserted without waiting for time to pass.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ogpu import ChainConfig
from ogpu.events import (
    watch_attempted,
    watch_task_status_changed,
)
from ogpu.events._codec import abi as _abi
from ogpu.events._codec.abi import EVENTS
from ogpu.events._net import faults as _faults
from ogpu.events._stream.hub import active_hubs
from ogpu.events._watch.watchers import SCOPED_WATCHERS
from ogpu.types import (
    ChainNotSupportedError,
    InvalidAddressError,
    InvalidArgumentError,
    InvalidRpcUrlError,
    OGPUError,
    RpcHttpError,
    RpcProtocolError,
    TaskStatus,
)
from tests.support.fakenode import FakeNode, html_response, http_response
from tests.support.streams import (
    FAST,
    SENTINEL,
    TASK,
    WATCHERS,
    Collector,
    address,
    all_gone,
    attempted,
    prove_filter,
    sentinel,
    streaming,
    ticks,
    wait_until,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def node() -> Iterator[FakeNode]:
    with FakeNode() as fake:  # the public kit's way in: its own transport, no respx
        yield fake


def expected_ids(
    node: FakeNode, event: str, field: str, scope: str, from_block: int = 0
) -> list[tuple[int, int]]:
    """Where on chain the logs a watcher should yield are, in chain order."""
    spec = EVENTS[event]
    return [
        (int(raw["blockNumber"], 16), int(raw["logIndex"], 16))
        for raw in node.all_logs()
        if raw["topics"][0] == spec.topic0
        and spec.scope_hex(raw, field) == scope[2:].lower()
        and int(raw["blockNumber"], 16) >= from_block
    ]


def attempts_of(node: FakeNode, task: str, from_block: int = 0) -> list[tuple[int, int]]:
    return expected_ids(node, "Attempted", "task", task, from_block)


def values_for(event: str, field: str, scope: str) -> tuple[Any, ...]:
    """Values of ``event`` with ``scope`` in ``field`` and fresh addresses elsewhere."""
    entry = {
        "TaskPublished": ("task", "source"),
        "Attempted": ("task", "provider", 7),
        "ResponseSubmitted": ("response", "task"),
        "ResponseStatusChanged": ("response", 1),
        "TaskStatusChanged": ("task", 2),
        "Registered": ("provider", 3, "source", 1),
    }[event]
    return tuple(scope if v == field else address() if isinstance(v, str) else v for v in entry)


# --- scoping and order ---


async def test_scoping_accepts_the_address_in_any_letter_case(node: FakeNode) -> None:
    task = "0x" + "ab" * 20
    spellings = [task, "0x" + task[2:].upper(), "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"]
    assert spellings[2].lower() == task
    collectors = [Collector(watch_attempted(s, poll_interval=FAST)) for s in spellings]
    others = Collector(watch_attempted(TASK, poll_interval=FAST))
    await streaming(4)
    attempted(node, task, 1)
    attempted(node, TASK, 2)
    node.add_log("TaskStatusChanged", task, 1)
    attempted(node, task, 3)
    node.mine()
    sentinel(node, task)
    sentinel(node, TASK)
    for c in [*collectors, others]:
        await c.until_sentinel()
        await c.stop()
    for c in collectors:
        assert [e.suggested_payment for e in c.events] == [1, 3, SENTINEL]
        assert all(e.task == "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB" for e in c.events)
    assert [e.suggested_payment for e in others.events] == [2, SENTINEL]
    await all_gone(node)


@pytest.mark.parametrize("watcher", sorted(SCOPED_WATCHERS))
async def test_each_watcher_yields_its_event_scoped_by_its_field(node: FakeNode, watcher: str) -> None:
    event, field = SCOPED_WATCHERS[watcher]
    scope = address()
    c = Collector(WATCHERS[watcher](scope, poll_interval=FAST))
    done = Collector(watch_attempted(TASK, poll_interval=FAST))
    await streaming(2)
    spec = EVENTS[event]
    others = [f for f in spec.data_word_of_field if f != field]
    node.add_log(event, *values_for(event, field, scope))
    for other in others:  # the address in another field of the same event does not count
        node.add_log(event, *values_for(event, other, scope))
    node.add_log(event, *values_for(event, field, address()))
    node.mine()
    node.add_log(event, *values_for(event, field, scope))
    node.mine()
    sentinel(node)
    await done.until_sentinel()
    want = expected_ids(node, event, field, scope)
    await c.until(lambda: len(c.events) >= len(want), "the scoped events")
    await ticks(active_hubs()[0], 2)
    await c.stop()
    await done.stop()
    assert c.ids() == want
    assert len(want) == 2
    assert all(type(e) is spec.event_class for e in c.events)
    assert all(getattr(e, field).lower() == scope for e in c.events)
    await all_gone(node)


async def test_events_come_in_chain_order_whatever_order_the_node_answers_in(node: FakeNode) -> None:
    node.reverse_answers = True
    for amount in range(6):
        attempted(node, TASK, amount)
        if amount % 2:
            node.mine()
    c = Collector(watch_attempted(TASK, from_block=0, poll_interval=FAST))
    await streaming()
    # Several blocks between two polls, several logs in each.
    for amount in range(10, 19):
        attempted(node, TASK, amount)
        if amount % 3 == 2:
            node.mine()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert c.ids() == attempts_of(node, TASK)
    assert c.ids() == sorted(c.ids())
    assert len(c.events) == 6 + 9 + 1
    await all_gone(node)


# --- where a watcher starts ---


async def test_from_block_none_skips_what_was_mined_before(node: FakeNode) -> None:
    attempted(node, TASK, 1)
    node.mine(3)
    c = Collector(watch_attempted(TASK, poll_interval=FAST))
    await streaming()
    attempted(node, TASK, 2)
    node.mine()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert [e.suggested_payment for e in c.events] == [2, SENTINEL]
    await all_gone(node)


@pytest.mark.parametrize("filter_history", [False, True], ids=["geth-like", "anvil-like"])
async def test_from_block_yields_history_then_live_without_gap_or_repeat(
    node: FakeNode, filter_history: bool
) -> None:
    node.filter_history = filter_history
    for amount in range(12):
        attempted(node, TASK, amount)
        attempted(node, address(), amount)
        node.mine(1 + amount % 3)
    start = 5
    c = Collector(watch_attempted(TASK, from_block=start, poll_interval=FAST))
    await streaming()
    for amount in range(100, 105):
        attempted(node, TASK, amount)
        node.mine()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert c.ids() == attempts_of(node, TASK, from_block=start)
    assert c.events[0].block_number >= start
    # A geth filter returns no history, so it has to come from eth_getLogs.
    assert node.count("eth_getLogs") >= 1
    await all_gone(node)


async def test_from_block_in_the_future_waits_for_that_block(node: FakeNode) -> None:
    node.mine(3)
    c = Collector(watch_attempted(TASK, from_block=6, poll_interval=FAST))
    await streaming()
    for amount in range(5):
        attempted(node, TASK, amount)
        node.mine()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert c.ids() == attempts_of(node, TASK, from_block=6)
    assert [e.block_number for e in c.events] == [6, 7, 8, 9]
    await all_gone(node)


async def test_watcher_with_history_joining_a_running_stream_misses_nothing(node: FakeNode) -> None:
    first = Collector(watch_attempted(TASK, poll_interval=FAST))
    await streaming()
    attempted(node, TASK, 1)
    node.mine()
    await first.until(lambda: len(first.events) == 1, "the first event")
    # Join right after the stream delivered a block, before it polls again.
    late = Collector(watch_attempted(TASK, from_block=0, poll_interval=FAST))
    await streaming(2)
    attempted(node, TASK, 2)
    node.mine()
    sentinel(node)
    await late.until_sentinel()
    await first.until_sentinel()
    await late.stop()
    await first.stop()
    assert late.ids() == attempts_of(node, TASK)
    assert first.ids() == attempts_of(node, TASK)
    await all_gone(node)


async def test_many_watchers_share_one_filter_and_one_request_per_tick(node: FakeNode) -> None:
    tasks = [address() for _ in range(40)]
    collectors = [Collector(watch_attempted(t, poll_interval=FAST)) for t in tasks]
    collectors += [Collector(watch_attempted(tasks[0], poll_interval=FAST)) for _ in range(5)]
    hub = await streaming(45)
    # After an install, eth_getLogs rides in each poll until the filter proves
    # itself with a log of its own (ogpu.events._stream.doubt); steady state follows.
    prove_filter(node)
    await wait_until(lambda: hub.steady, "the install checks to end")
    await ticks(hub, 1)
    steady = len(node.requests)
    for amount, task in enumerate(tasks):
        attempted(node, task, amount)
        if amount % 10 == 9:
            node.mine()
    for task in tasks:
        attempted(node, task, SENTINEL)
    node.mine()
    for c in collectors:
        await c.until_sentinel()
    await ticks(hub, 3)
    assert node.count("eth_newFilter") == 1
    assert len(node.filters) == 1
    # Steady state: each tick is one HTTP request, batching the latest header,
    # the headers that pin the chain, and the filter's changes.
    assert node.requests[steady:]
    for request in node.requests[steady:]:
        assert request[0] == "eth_getBlockByNumber" and request[-1] == "eth_getFilterChanges"
        assert set(request[1:-1]) <= {"eth_getBlockByNumber"}
    for c, task in zip(collectors, tasks + [tasks[0]] * 5, strict=True):
        assert c.ids() == attempts_of(node, task)
        assert len(c.events) == 2
    for c in collectors[:-1]:
        await c.stop()
    assert node.filters  # one watcher is still there
    await collectors[-1].stop()
    await all_gone(node)


def test_asyncio_run_twice_in_one_program() -> None:
    # The guide's "Mixing sync and async" pattern: every asyncio.run gets a working stream.
    fake = FakeNode()

    async def first_attempt(amount: int) -> int:
        c = Collector(watch_attempted(TASK, poll_interval=FAST))
        await streaming()
        attempted(fake, TASK, amount)
        fake.mine()
        await c.until(lambda: bool(c.events), "an event")
        await c.stop()
        return int(c.events[0].suggested_payment)

    with fake:
        assert asyncio.run(first_attempt(1)) == 1
        assert asyncio.run(first_attempt(2)) == 2
    assert fake.filters == {}


# --- leaving the loop ---


async def _leave_by_break(node: FakeNode) -> None:
    async for _ in watch_attempted(TASK, poll_interval=FAST):
        break


async def _leave_by_return(node: FakeNode) -> None:
    async def first() -> Any:
        async for event in watch_attempted(TASK, poll_interval=FAST):
            return event
        return None

    assert (await first()).suggested_payment == 1


async def _leave_by_aclose(node: FakeNode) -> None:
    gen = watch_attempted(TASK, poll_interval=FAST)
    assert (await gen.__anext__()).suggested_payment == 1
    await gen.aclose()


async def _leave_by_cancel(node: FakeNode) -> None:
    async def forever() -> None:
        async for _ in watch_attempted(TASK, poll_interval=FAST):
            pass

    task = asyncio.get_running_loop().create_task(forever())
    await wait_until(lambda: node.count("eth_getFilterChanges") >= 2, "polling")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _leave_by_timeout(node: FakeNode) -> None:
    async def first() -> Any:
        async for event in watch_attempted(address(), poll_interval=FAST):
            return event
        return None

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(first(), 0.3)


LEAVERS: dict[str, Callable[[FakeNode], Any]] = {
    "break": _leave_by_break,
    "return": _leave_by_return,
    "aclose": _leave_by_aclose,
    "cancel": _leave_by_cancel,
    "wait_for timeout": _leave_by_timeout,
}


@pytest.mark.parametrize("how", sorted(LEAVERS))
async def test_leaving_the_loop_uninstalls_the_filter_and_stops_polling(node: FakeNode, how: str) -> None:
    async def feed() -> None:
        await wait_until(lambda: node.count("eth_getFilterChanges") >= 1, "the watcher to start")
        attempted(node, TASK, 1)
        node.mine()

    feeder = asyncio.get_running_loop().create_task(feed())
    await LEAVERS[how](node)
    await feeder
    await all_gone(node)
    uninstalled = [params[0] for method, params in node.calls if method == "eth_uninstallFilter"]
    assert len(node.created_filters) == 1
    assert uninstalled == node.created_filters
    assert node.filters == {}
    # Nothing polls after the stream is gone.
    polls = node.count("eth_getFilterChanges")
    await asyncio.sleep(5 * FAST)
    assert node.count("eth_getFilterChanges") == polls


# --- bad input fails at the call, before any request ---

BAD_ADDRESSES: list[object] = [
    "",
    "0x",
    "0x123",
    "11" * 20,
    "0x" + "11" * 21,
    "0x" + "g" * 40,
    " 0x" + "11" * 20,
    None,
    123,
    b"0x" + b"11" * 20,
]


@pytest.mark.parametrize("watcher", sorted(WATCHERS))
@pytest.mark.parametrize("bad", BAD_ADDRESSES, ids=repr)
def test_malformed_address_fails_at_the_call(node: FakeNode, watcher: str, bad: object) -> None:
    with pytest.raises(InvalidAddressError):
        WATCHERS[watcher](bad)
    assert node.requests == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"from_block": -1},
        {"from_block": "10"},
        {"from_block": 1.5},
        {"from_block": True},
        {"poll_interval": 0},
        {"poll_interval": -1.0},
        {"poll_interval": float("nan")},
        {"poll_interval": float("inf")},
        {"poll_interval": "2"},
        {"poll_interval": None},
        {"confirmations": -1},
    ],
    ids=repr,
)
@pytest.mark.parametrize("watcher", sorted(WATCHERS))
def test_bad_option_fails_at_the_call(node: FakeNode, watcher: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        WATCHERS[watcher](TASK, **kwargs)
    assert next(iter(kwargs)) in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert node.requests == []


@pytest.mark.parametrize("watcher", sorted(WATCHERS))
def test_unknown_keyword_is_a_type_error(node: FakeNode, watcher: str) -> None:
    with pytest.raises(TypeError):
        WATCHERS[watcher](TASK, from_blok=3)
    with pytest.raises(TypeError):
        WATCHERS[watcher](TASK, 3)  # the options are keyword-only
    assert node.requests == []


def test_bad_rpc_url_from_the_environment_fails_at_the_call(
    node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    ChainConfig.reset_rpc()
    monkeypatch.setenv("OGPU_RPC_URL", "localhost:8545")
    with pytest.raises(InvalidRpcUrlError):
        watch_attempted(TASK)
    assert node.requests == []


def test_unknown_chain_from_the_environment_fails_at_the_call(
    node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OGPU_CHAIN", "ropsten")
    with pytest.raises(ChainNotSupportedError):
        watch_attempted(TASK)
    assert node.requests == []


def test_a_watcher_that_is_never_iterated_sends_nothing(node: FakeNode) -> None:
    watch_attempted(TASK, from_block=0)
    assert node.requests == []


# --- provider limits on eth_getLogs ---

RANGE_LIMITS = {
    "block range too large": dict(max_range=5, range_error="block range too large", range_code=-32000),
    "exceed maximum block range": dict(max_range=5, range_error="exceed maximum block range: {limit}"),
    "max is N blocks": dict(max_range=5, range_error="max is {limit} blocks", range_code=-32602),
    "range suggested": dict(
        max_range=5, range_error="Try with this block range [{first}, {last}].", range_code=-32005
    ),
    "result count": dict(max_results=2, results_error="query returned more than {limit} results"),
    "result count, range suggested": dict(
        max_results=2,
        results_error="query returned more than {limit} results. "
        "Try with this block range [{first}, {last}].",
    ),
}


@pytest.mark.parametrize("limit", sorted(RANGE_LIMITS))
async def test_provider_range_and_result_caps_still_deliver_every_event_once(
    node: FakeNode, limit: str, caplog: pytest.LogCaptureFixture
) -> None:
    for knob, value in RANGE_LIMITS[limit].items():
        setattr(node, knob, value)
    # At most two logs per block: a result cap of 2 can always be met.
    for block in range(1, 61):
        if block % 4 == 0 or block % 7 == 0:
            attempted(node, TASK, block)
        if block % 6 == 0:
            attempted(node, address(), block)
        node.mine()
    caplog.set_level(logging.INFO, logger="ogpu.events")
    c = Collector(watch_attempted(TASK, from_block=1, poll_interval=FAST))
    await streaming()
    attempted(node, TASK, 1000)
    node.mine()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert c.ids() == attempts_of(node, TASK)
    assert node.errors, "the provider never refused a range"
    # The provider's policy is said once, at INFO: a refusal is learning, not a fault.
    refusals = [r for r in caplog.records if "refused eth_getLogs" in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.INFO]
    await all_gone(node)


@pytest.mark.parametrize("limit", ["range suggested", "result count, range suggested"])
async def test_the_range_a_provider_suggests_is_used(node: FakeNode, limit: str) -> None:
    for knob, value in RANGE_LIMITS[limit].items():
        setattr(node, knob, value)
    for block in range(1, 41):
        if block % 3 == 0:
            attempted(node, TASK, block)
        node.mine()
    c = Collector(watch_attempted(TASK, from_block=1, poll_interval=FAST))
    await streaming()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert c.ids() == attempts_of(node, TASK)
    queries = [params[0] for method, params in node.calls if method == "eth_getLogs"]
    refused = next(i for i, (method, _, _) in enumerate(node.errors) if method == "eth_getLogs")
    suggestion = node.errors[refused][2]
    first, last = suggestion[suggestion.index("[") + 1 : suggestion.index("]")].split(", ")
    # The call after the first refusal (the first one to start at the same
    # block as the call before it) asks for exactly the range the provider named.
    retry = next(i for i in range(1, len(queries)) if queries[i]["fromBlock"] == queries[i - 1]["fromBlock"])
    retried = queries[retry]
    assert (retried["fromBlock"], retried["toBlock"]) == (first, last)
    await all_gone(node)


# --- nodes that behave differently ---


async def test_node_without_filters_is_followed_with_get_logs(
    node: FakeNode, caplog: pytest.LogCaptureFixture
) -> None:
    node.filters_supported = False
    caplog.set_level(logging.INFO, logger="ogpu.events")
    attempted(node, TASK, 0)
    node.mine(2)
    c = Collector(watch_attempted(TASK, from_block=1, poll_interval=FAST))
    hub = await streaming()
    for amount in range(1, 8):
        attempted(node, TASK, amount)
        node.mine(amount % 3)
        await ticks(hub)
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert c.ids() == attempts_of(node, TASK)
    assert [e.suggested_payment for e in c.events] == [*range(8), SENTINEL]
    assert node.count("eth_getFilterChanges") == 0
    assert node.count("eth_getLogs") >= 3
    assert any("offers no log filters" in r.getMessage() for r in caplog.records)
    await all_gone(node)


@pytest.mark.parametrize("filters", [True, False], ids=["filters", "no filters"])
async def test_head_going_backwards_repeats_and_loses_nothing(node: FakeNode, filters: bool) -> None:
    node.filters_supported = filters
    c = Collector(watch_attempted(TASK, from_block=0, poll_interval=FAST))
    hub = await streaming()
    lags = random.Random(3)
    for amount in range(12):
        attempted(node, TASK, amount)
        attempted(node, address(), amount)
        node.mine(1 + amount % 2)
        # A load-balanced node: the next answers come from backends a few blocks behind.
        node.lag_head([lags.randrange(5), 0, lags.randrange(3)])
        await ticks(hub)
    sentinel(node)
    await c.until_sentinel()
    await ticks(hub, 3)
    await c.stop()
    assert c.ids() == attempts_of(node, TASK)
    assert [e.suggested_payment for e in c.events] == [*range(12), SENTINEL]
    await all_gone(node)


async def test_429_with_retry_after_is_retried_and_logged(
    node: FakeNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ogpu.events")
    c = Collector(watch_attempted(TASK, poll_interval=FAST))
    await streaming()
    node.fail_next(http_response(429, headers={"Retry-After": "1"}))
    attempted(node, TASK, 1)
    node.mine()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert [e.suggested_payment for e in c.events] == [1, SENTINEL]
    warnings = [
        r.getMessage() for r in caplog.records if r.name == "ogpu.events" and r.levelno == logging.WARNING
    ]
    assert any("HTTP 429" in m and "retrying in 1.00s" in m for m in warnings), warnings
    # A 429 is refused before the node acts: the filter is kept.
    assert node.count("eth_newFilter") == 1
    await all_gone(node)


async def test_url_that_answers_html_raises_a_typed_error(
    node: FakeNode, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_faults, "STARTUP_DEADLINE", 0.5)
    node.http_override = html_response(200)
    caplog.set_level(logging.WARNING, logger="ogpu.events")
    gen = watch_attempted(TASK, poll_interval=FAST)
    with pytest.raises(RpcProtocolError) as caught:
        await asyncio.wait_for(gen.__anext__(), 5)
    assert isinstance(caught.value, OGPUError)
    assert "text/html" in str(caught.value)
    # It was retried (and said so) before being taken for a wrong URL.
    assert len(node.requests) >= 2
    assert any("retrying" in r.getMessage() for r in caplog.records)
    await all_gone(node)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405])
async def test_http_4xx_raises_at_once(node: FakeNode, status: int) -> None:
    node.http_override = html_response(status)
    gen = watch_attempted(TASK, poll_interval=FAST)
    with pytest.raises(RpcHttpError) as caught:
        await asyncio.wait_for(gen.__anext__(), 5)
    assert caught.value.status == status
    assert len(node.requests) == 1
    await all_gone(node)


async def test_lost_answer_to_get_filter_changes_is_refilled_not_retried(node: FakeNode) -> None:
    c = Collector(watch_attempted(TASK, poll_interval=FAST))
    await streaming()
    attempted(node, TASK, 1)
    attempted(node, TASK, 2)
    node.mine()
    # The node hands these logs out and forgets them; the answer never arrives.
    node.lose_next_answer()
    await wait_until(lambda: node.count("eth_newFilter") == 2, "the filter to be recreated")
    attempted(node, TASK, 3)
    node.mine()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert [e.suggested_payment for e in c.events] == [1, 2, 3, SENTINEL]
    await all_gone(node)


# --- logs that must not be yielded ---


async def test_log_with_unknown_enum_value_is_yielded_with_its_value_and_warned_once(
    node: FakeNode, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A newer contract's status must not lose the event (issue 21.5): kept as UNKNOWN_<n>.
    monkeypatch.setattr(_abi, "_WARNED", set())
    caplog.set_level(logging.WARNING, logger="ogpu.events")
    node.add_log("TaskStatusChanged", TASK, 1)
    node.add_log("TaskStatusChanged", TASK, 42)  # in history
    node.mine()
    c = Collector(watch_task_status_changed(TASK, from_block=0, poll_interval=FAST))
    done = Collector(watch_attempted(TASK, poll_interval=FAST))
    await streaming(2)
    node.add_log("TaskStatusChanged", TASK, 9)  # live
    node.add_log("TaskStatusChanged", TASK, 2)
    node.add_log("TaskStatusChanged", TASK, 9)
    node.mine()
    node.add_log("TaskStatusChanged", TASK, 5)
    node.mine()
    sentinel(node)
    await done.until_sentinel()
    await c.until(lambda: len(c.events) == 6, "every event")
    await c.stop()
    await done.stop()
    assert [e.status for e in c.events] == [1, 42, 9, 2, 9, 5]
    assert all(isinstance(e.status, TaskStatus) for e in c.events)
    assert [e.status.name for e in c.events][1:3] == ["UNKNOWN_42", "UNKNOWN_9"]
    unknown = [r.getMessage() for r in caplog.records if "does not know" in r.getMessage()]
    assert len(unknown) == 2, unknown  # one per value, not one per event
    assert not any("does not decode" in r.getMessage() for r in caplog.records)
    await all_gone(node)


async def test_removed_logs_are_never_yielded(node: FakeNode, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ogpu.events")
    c = Collector(watch_attempted(TASK, poll_interval=FAST))
    hub = await streaming()
    attempted(node, TASK, 1)
    node.mine()
    await c.until(lambda: len(c.events) == 1, "the first event")
    delivered = node.blocks[-1].logs[0]
    # A log from a block that was replaced before the stream saw it...
    ghost = {**delivered, "blockHash": "0x" + "ee" * 32, "logIndex": "0x5"}
    node.push_removed(ghost)
    # ...and one that was already delivered (possible only with confirmations=0).
    node.push_removed(delivered)
    await ticks(hub, 2)
    attempted(node, TASK, 2)
    node.mine()
    sentinel(node)
    await c.until_sentinel()
    await c.stop()
    assert [e.suggested_payment for e in c.events] == [1, 2, SENTINEL]
    assert any("already delivered was removed" in r.getMessage() for r in caplog.records)
    await all_gone(node)
