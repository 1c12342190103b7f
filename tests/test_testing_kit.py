"""``ogpu.events.testing.FakeNode`` as a user's test suite meets it.

Every test writes what a user's test would: enter the node, run watchers
the way a service does, mine events by field name, break the node, and
check what the watchers yielded. The project's other unit tests reach the
same node through ``tests/fakenode.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any

import httpx
import pytest
import respx

from ogpu import ChainConfig, ChainId
from ogpu.events import (
    AttemptedEvent,
    OwnershipTransferredEvent,
    SourceParams,
    SourceUpdatedEvent,
    TaskStatusChangedEvent,
    watch_attempted,
    watch_nexus,
    watch_registered,
    watch_response_status_changed,
    watch_response_submitted,
    watch_task_published,
    watch_task_status_changed,
)
from ogpu.events.testing import FakeNode
from ogpu.types import (
    DeliveryMethod,
    Environment,
    InvalidAddressError,
    InvalidArgumentError,
    OGPUError,
    ResponseStatus,
    TaskStatus,
)
from tests.fakenode import inner, wait_until

pytestmark = pytest.mark.anyio

FAST = 0.01
T = "0x" + "11" * 20
P = "0x" + "22" * 20
S = "0x" + "33" * 20
R = "0x" + "44" * 20


class Seen:
    """A watcher run as a service runs it: a task doing ``async for``, keeping what it yields."""

    def __init__(self, gen: AsyncGenerator[Any, None]) -> None:
        self.events: list[Any] = []
        self.task = asyncio.get_running_loop().create_task(self._run(gen))

    async def _run(self, gen: AsyncGenerator[Any, None]) -> None:
        async with contextlib.aclosing(gen):
            async for event in gen:
                self.events.append(event)

    async def count(self, n: int) -> list[Any]:
        def enough() -> bool:
            if self.task.done():
                self.task.result()
                raise AssertionError(f"the watcher stopped after {self.events}")
            return len(self.events) >= n

        await wait_until(enough, f"{n} events")
        return self.events

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def ogpu_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("ogpu")]


# --- pointing ogpu at it, and back ---


async def test_entering_points_the_watchers_at_the_node_and_leaving_restores_the_rpc_url() -> None:
    ChainConfig.set_rpc("https://my-node.example/rpc")
    with FakeNode() as node:
        assert ChainConfig.get_rpc() == node.url
        seen = Seen(watch_attempted(T, poll_interval=FAST))
        await node.wait_for_watchers()
        emitted = node.emit("Attempted", task=T, provider=P, suggested_payment=5)
        assert await seen.count(1) == [emitted]
        await seen.stop()
    assert ChainConfig.get_rpc() == "https://my-node.example/rpc"


def test_leaving_puts_back_an_rpc_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OGPU_RPC_URL", "http://127.0.0.1:9999")
    with FakeNode() as node:
        assert ChainConfig.get_rpc() == node.url
    assert ChainConfig.get_rpc() == "http://127.0.0.1:9999"


async def test_a_chain_given_is_current_while_active_and_logs_sit_at_its_nexus() -> None:
    async with FakeNode(chain="testnet") as node:
        assert ChainConfig.get_current_chain() is ChainId.OGPU_TESTNET
        assert node.nexus == ChainConfig.get_contract_address("NEXUS", "testnet")
        seen = Seen(watch_task_status_changed(T, poll_interval=FAST))
        await node.wait_for_watchers()
        node.emit("TaskStatusChanged", task=T, status=TaskStatus.NEW)
        await seen.count(1)
        await seen.stop()
        assert inner(node).all_logs()[0]["address"] == node.nexus.lower()
    assert ChainConfig.get_current_chain() is ChainId.OGPU_MAINNET


async def test_nested_nodes_each_have_their_url_and_the_outer_one_comes_back() -> None:
    async with FakeNode() as outer:
        async with FakeNode() as inner:
            assert inner.url != outer.url
            assert ChainConfig.get_rpc() == inner.url
        assert ChainConfig.get_rpc() == outer.url
        seen = Seen(watch_attempted(T, poll_interval=FAST))
        await outer.wait_for_watchers()
        outer.emit("Attempted", task=T, provider=P, suggested_payment=1)
        await seen.count(1)
        await seen.stop()
    assert inner.requests == []


async def test_it_works_while_the_users_own_test_mocks_other_urls_with_respx() -> None:
    with respx.mock(assert_all_mocked=True) as router:
        router.get("https://api.example/price").respond(json={"ogpu": 2})
        async with FakeNode() as node:
            seen = Seen(watch_attempted(T, poll_interval=FAST))
            await node.wait_for_watchers()
            node.emit("Attempted", task=T, provider=P, suggested_payment=3)
            async with httpx.AsyncClient() as client:
                price = (await client.get("https://api.example/price")).json()
            assert [e.suggested_payment for e in await seen.count(1)] == [3]
            await seen.stop()
    assert price == {"ogpu": 2}
    assert node.count("eth_newFilter") == 1


async def test_leaving_stops_a_watcher_still_running_and_uninstalls_its_filter() -> None:
    async with FakeNode() as node:
        seen = Seen(watch_attempted(T, poll_interval=FAST))
        await node.wait_for_watchers()
        assert inner(node).filters
    with pytest.raises(OGPUError, match=r"FakeNode .* was closed"):
        await seen.task
    assert inner(node).filters == {}
    assert ogpu_tasks() == []


async def test_leaving_a_plain_with_block_stops_a_running_watcher_too() -> None:
    with FakeNode() as node:
        seen = Seen(watch_attempted(T, poll_interval=FAST))
        await node.wait_for_watchers()
    with pytest.raises(OGPUError, match=r"FakeNode .* was closed"):
        await seen.task
    await wait_until(lambda: not ogpu_tasks(), "the stopped stream's task to end")
    assert inner(node).filters == {}


async def test_a_watcher_with_the_default_poll_interval_sees_an_event_without_waiting_for_it() -> None:
    # An hour between polls: only the node waking the stream when it mines delivers the event.
    async with FakeNode() as node:
        seen = Seen(watch_attempted(T, poll_interval=3600))
        await node.wait_for_watchers()
        node.emit("Attempted", task=T, provider=P, suggested_payment=1)
        await seen.count(1)
        node.lose_filters()  # recovering takes the stream more than one tick
        node.emit("Attempted", task=T, provider=P, suggested_payment=2)
        node.emit("Attempted", task=T, provider=P, suggested_payment=3)
        assert [e.suggested_payment for e in await seen.count(3)] == [1, 2, 3]
        await seen.stop()


async def test_wait_for_watchers_says_when_nobody_follows_the_node() -> None:
    async with FakeNode() as node:
        with pytest.raises(TimeoutError, match="0 of 1 watchers"):
            await node.wait_for_watchers(timeout=0.05)
        with pytest.raises(InvalidArgumentError):
            await node.wait_for_watchers(0)


# --- emitting events by field name ---

SIX: list[tuple[Callable[..., AsyncGenerator[Any, None]], str, str, dict[str, Any]]] = [
    (watch_task_published, S, "TaskPublished", {"task": T, "source": S}),
    (watch_attempted, T, "Attempted", {"task": T, "provider": P, "suggested_payment": 10**18}),
    (watch_response_submitted, T, "ResponseSubmitted", {"response": R, "task": T}),
    (
        watch_response_status_changed,
        R,
        "ResponseStatusChanged",
        {"response": R, "status": ResponseStatus.CONFIRMED},
    ),
    (watch_task_status_changed, T, "TaskStatusChanged", {"task": T, "status": TaskStatus.FINALIZED}),
    (
        watch_registered,
        S,
        "Registered",
        {"provider": P, "registrant_id": 7, "source": S, "preferred_environment": Environment.NVIDIA},
    ),
]


@pytest.mark.parametrize(("watcher", "scope", "event", "fields"), SIX, ids=[s[2] for s in SIX])
async def test_emit_returns_exactly_what_the_watcher_yields(
    watcher: Callable[..., AsyncGenerator[Any, None]], scope: str, event: str, fields: dict[str, Any]
) -> None:
    async with FakeNode() as node:
        seen = Seen(watcher(scope, poll_interval=FAST))
        await node.wait_for_watchers()
        emitted = node.emit(event, **fields)
        assert await seen.count(1) == [emitted]
        await seen.stop()
    assert emitted.block_number == 1 and emitted.log_index == 0
    for name, value in fields.items():
        got = getattr(emitted, name)
        assert got.lower() == value.lower() if isinstance(value, str) else got == value


async def test_events_with_a_struct_or_indexed_fields_and_any_spelling_of_the_name() -> None:
    params = SourceParams(
        client=P,
        image_metadata_url="ipfs://image",
        image_environments=Environment.CPU | Environment.AMD,
        min_payment=5,
        min_available_lockup=6,
        max_expiry_duration=3600,
        privacy_enabled=True,
        optional_params_url="",
        delivery_method=DeliveryMethod.FIRST_RESPONSE,
        last_update_time=1_700_000_000,
    )
    async with FakeNode() as node:
        seen = Seen(watch_nexus("SourceUpdated", OwnershipTransferredEvent, poll_interval=FAST))
        await node.wait_for_watchers()
        updated = node.emit("source-updated", source=S, source_params=params)
        moved = node.emit(OwnershipTransferredEvent, previous_owner=P, new_owner=R)
        assert await seen.count(2) == [updated, moved]
        await seen.stop()
    assert isinstance(updated, SourceUpdatedEvent) and updated.source_params == params
    assert isinstance(moved, OwnershipTransferredEvent) and moved.new_owner.lower() == R


async def test_emit_many_puts_its_events_in_one_block_in_order() -> None:
    async with FakeNode(start_block=5) as node:
        seen = Seen(watch_attempted(T, poll_interval=FAST))
        await node.wait_for_watchers()
        emitted = node.emit_many(
            [("Attempted", {"task": T, "provider": P, "suggested_payment": n}) for n in range(3)]
            + [("TaskStatusChanged", {"task": T, "status": TaskStatus.ATTEMPTED})]
        )
        assert await seen.count(3) == emitted[:3]
        await seen.stop()
    assert node.head == 6
    assert {e.block_number for e in emitted} == {6}
    assert [e.log_index for e in emitted] == [0, 1, 2, 3]
    assert isinstance(emitted[3], TaskStatusChangedEvent)


def test_mine_and_head() -> None:
    node = FakeNode()
    assert node.head == 0
    assert node.mine() == 1
    assert node.mine(4) == 5 == node.head


@pytest.mark.parametrize(
    ("event", "fields", "error", "says"),
    [
        ("Attemptd", {}, InvalidArgumentError, "unknown Nexus event 'Attemptd'"),
        ("Attempted", {"task": T, "provider": P}, InvalidArgumentError, "needs suggested_payment"),
        (
            "Attempted",
            {"task": T, "provider": P, "suggested_payment": 1, "amount": 2},
            None,
            "no field amount",
        ),
        ("TaskStatusChanged", {"task": T, "status": 1, "block_number": 3}, None, "set by the node"),
        ("TaskStatusChanged", {"task": "0x1234", "status": 1}, InvalidAddressError, "TaskStatusChanged task"),
        ("TaskStatusChanged", {"task": T, "status": 256}, None, "must fit uint8"),
        ("Attempted", {"task": T, "provider": P, "suggested_payment": -1}, None, "must fit uint256"),
        ("Attempted", {"task": T, "provider": P, "suggested_payment": "5"}, None, "must be an int"),
    ],
)
def test_a_bad_event_is_refused_at_the_call_and_nothing_is_mined(
    event: str, fields: dict[str, Any], error: type[Exception] | None, says: str
) -> None:
    node = FakeNode()
    with pytest.raises(error or InvalidArgumentError, match=says):
        node.emit(event, **fields)
    with pytest.raises(InvalidArgumentError):
        node.emit_many([("Attempted", {"task": T, "provider": P, "suggested_payment": 1}), (event, fields)])
    assert node.head == 0


# --- faults ---


async def test_lost_filters_lose_no_event() -> None:
    async with FakeNode() as node:
        seen = Seen(watch_task_status_changed(T, poll_interval=FAST))
        await node.wait_for_watchers()
        emitted = [node.emit("TaskStatusChanged", task=T, status=TaskStatus.ATTEMPTED)]
        node.lose_filters()
        emitted.append(node.emit("TaskStatusChanged", task=T, status=TaskStatus.RESPONDED))
        node.lose_filters()
        emitted.append(node.emit("TaskStatusChanged", task=T, status=TaskStatus.FINALIZED))
        assert await seen.count(3) == emitted
        await seen.stop()
    assert node.count("eth_newFilter") >= 2


async def test_failed_requests_and_a_lost_answer_are_retried_and_lose_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeNode() as node:
        seen = Seen(watch_attempted(T, poll_interval=FAST))
        await node.wait_for_watchers()
        node.fail_next(status=502, times=2)
        first = node.emit("Attempted", task=T, provider=P, suggested_payment=1)
        await seen.count(1)
        node.lose_next_answer()
        second = node.emit("Attempted", task=T, provider=P, suggested_payment=2)
        assert await seen.count(2) == [first, second]
        await wait_until(lambda: len(seen.events) == 2 and inner(node).filters != {}, "a steady stream")
        await seen.stop()
    assert "HTTP 502" in caplog.text


def test_fail_next_checks_its_arguments() -> None:
    node = FakeNode()
    for bad in ({"status": 99}, {"times": 0}, {"status": True}):
        with pytest.raises(InvalidArgumentError):
            node.fail_next(**bad)


async def test_a_node_without_filters_is_followed_with_get_logs() -> None:
    async with FakeNode().without_filters() as node:
        seen = Seen(watch_attempted(T, poll_interval=FAST))
        await node.wait_for_watchers()
        emitted = node.emit("Attempted", task=T, provider=P, suggested_payment=1)
        assert await seen.count(1) == [emitted]
        await seen.stop()
    assert node.count("eth_getLogs") >= 1
    assert inner(node).filters == {}


async def test_a_reorg_brings_its_new_branch_and_confirmations_hide_what_it_removed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ogpu.events")
    async with FakeNode() as node:
        fast = Seen(watch_task_status_changed(T, poll_interval=FAST))
        deep = Seen(watch_task_status_changed(T, poll_interval=FAST, confirmations=2))
        await node.wait_for_watchers(2)
        orphan = node.emit("TaskStatusChanged", task=T, status=TaskStatus.ATTEMPTED)
        await fast.count(1)
        branch = node.reorg(
            1, {0: [("TaskStatusChanged", {"task": T, "status": TaskStatus.CANCELED})]}, length=3
        )
        assert [e.status for e in branch] == [TaskStatus.CANCELED]
        assert branch[0].block_number == orphan.block_number
        assert await fast.count(2) == [orphan, *branch]
        assert await deep.count(1) == branch
        await fast.stop()
        await deep.stop()
    assert "reorg" in caplog.text and orphan.transaction_hash in caplog.text


def test_reorg_checks_its_arguments() -> None:
    node = FakeNode()
    node.mine(2)
    with pytest.raises(InvalidArgumentError, match="cannot reorg 3 blocks"):
        node.reorg(3)
    with pytest.raises(InvalidArgumentError, match="offset"):
        node.reorg(1, {2: [("Attempted", {"task": T, "provider": P, "suggested_payment": 1})]})
    with pytest.raises(InvalidArgumentError, match="pairs"):
        node.reorg(1, [("Attempted", T, P, 1)])  # type: ignore[list-item]
    assert node.reorg(2, [("SourcePublished", {"source": S})])[0].block_number == 1
    assert node.head == 2


def test_it_is_an_attempted_event_the_user_can_compare() -> None:
    emitted = FakeNode().emit("Attempted", task=T, provider=P, suggested_payment=5)
    assert isinstance(emitted, AttemptedEvent)
    assert emitted.task == "0x" + "11" * 20 and emitted.suggested_payment == 5
