"""The unscoped stream, ``watch_nexus``, against a real node: every Nexus event type, typed.

The shared anvil also carries other tests' events, so each test keeps only
the events that mention addresses it made up itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from ogpu import ChainConfig
from ogpu.events import (
    AttemptedEvent,
    RegisteredEvent,
    ResponseStatusChangedEvent,
    ResponseSubmittedEvent,
    SourceParams,
    SourcePublishedEvent,
    SourceStatusChangedEvent,
    SourceUpdatedEvent,
    TaskPublishedEvent,
    TaskStatusChangedEvent,
    watch_nexus,
)
from ogpu.events._codec.abi import EVENTS
from ogpu.events._devnode.nodes import Anvil
from ogpu.types import (
    DeliveryMethod,
    Environment,
    InvalidArgumentError,
    ResponseStatus,
    SourceStatus,
    TaskStatus,
)
from tests.support.devnodes import checksummed, random_address, send

pytestmark = pytest.mark.anyio

LONG_URL = "ipfs://bafy" + "é" * 2_000 + "x" * 2_989  # 5,000 characters, multi-byte ones included
LONG_PARAMS = ("https://example.org/params?" + "q=1&" * 1_250)[:4_997] + "end"  # 5,000 characters
UINT256_MAX = 2**256 - 1


@dataclasses.dataclass
class _Emission:
    event: str
    values: tuple[Any, ...]
    expected: tuple[Any, ...]  # the payload the dataclass must carry
    cls: type[Any]


class _Cast:
    """Fresh addresses for one round of events, and the nine events about them."""

    def __init__(self) -> None:
        self.task, self.source, self.response = random_address(), random_address(), random_address()
        self.provider, self.client = random_address(), random_address()

    @property
    def addresses(self) -> set[str]:
        return {checksummed(a) for a in (self.task, self.source, self.response, self.provider, self.client)}

    def every_event(self) -> list[_Emission]:
        task, source, response, provider = (
            checksummed(self.task),
            checksummed(self.source),
            checksummed(self.response),
            checksummed(self.provider),
        )
        params = (self.client, LONG_URL, 5, UINT256_MAX, 10**30, 86_400, True, LONG_PARAMS, 1, 1_700_000_000)
        typed_params = SourceParams(
            checksummed(self.client),
            LONG_URL,
            Environment.CPU | Environment.AMD,
            UINT256_MAX,
            10**30,
            86_400,
            True,
            LONG_PARAMS,
            DeliveryMethod.FIRST_RESPONSE,
            1_700_000_000,
        )
        return [
            _Emission("TaskPublished", (self.task, self.source), (task, source), TaskPublishedEvent),
            _Emission(
                "Attempted",
                (self.task, self.provider, UINT256_MAX),
                (task, provider, UINT256_MAX),
                AttemptedEvent,
            ),
            _Emission(
                "ResponseSubmitted", (self.response, self.task), (response, task), ResponseSubmittedEvent
            ),
            _Emission(
                "ResponseStatusChanged",
                (self.response, 1),
                (response, ResponseStatus.CONFIRMED),
                ResponseStatusChangedEvent,
            ),
            _Emission(
                "TaskStatusChanged", (self.task, 5), (task, TaskStatus.FINALIZED), TaskStatusChangedEvent
            ),
            _Emission(
                "Registered",
                (self.provider, 2**255 + 7, self.source, 6),
                (provider, 2**255 + 7, source, Environment.NVIDIA | Environment.AMD),
                RegisteredEvent,
            ),
            _Emission("SourcePublished", (self.source,), (source,), SourcePublishedEvent),
            _Emission(
                "SourceStatusChanged",
                (self.source, 1),
                (source, SourceStatus.INACTIVE),
                SourceStatusChangedEvent,
            ),
            _Emission("SourceUpdated", (self.source, params), (source, typed_params), SourceUpdatedEvent),
        ]


def _mentions(event: Any, addresses: set[str]) -> bool:
    for field in dataclasses.fields(event):
        value = getattr(event, field.name)
        if isinstance(value, SourceParams):
            value = value.client
        if value in addresses:
            return True
    return False


async def _ours(stream: AsyncGenerator[Any, None], addresses: set[str], count: int) -> tuple[list[Any], int]:
    """The next ``count`` events mentioning ``addresses``, and how many events came in all."""
    found: list[Any] = []
    seen = 0
    give_up = time.monotonic() + 15.0
    while len(found) < count:
        event = await asyncio.wait_for(stream.__anext__(), max(0.01, give_up - time.monotonic()))
        seen += 1
        if _mentions(event, addresses):
            found.append(event)
    return found, seen


def _check(got: list[Any], emitted: list[_Emission], txs: list[str]) -> None:
    assert [type(e) for e in got] == [e.cls for e in emitted]
    for event, emission, tx in zip(got, emitted, txs, strict=True):
        payload = dict(zip(EVENTS[emission.event].field_names, emission.expected, strict=True))
        chain = {"block_number": event.block_number, "transaction_hash": tx, "log_index": event.log_index}
        assert event == emission.cls(**payload, **chain, block_hash=event.block_hash)


async def test_every_nexus_event_type_decodes_from_history_and_live(node: Anvil) -> None:
    start = node.block_number() + 1
    past = _Cast()
    past_events = past.every_event()
    past_txs = [send(node, e.event, *e.values) for e in past_events]

    stream = watch_nexus(from_block=start, poll_interval=0.05)
    try:
        from_history, _ = await _ours(stream, past.addresses, len(past_events))
        # The stream has delivered, so it has joined: these arrive live.
        live = _Cast()
        live_events = live.every_event()
        live_txs = [send(node, e.event, *e.values) for e in live_events]
        from_filter, _ = await _ours(stream, live.addresses, len(live_events))
    finally:
        await stream.aclose()

    _check(from_history, past_events, past_txs)
    _check(from_filter, live_events, live_txs)
    updated = from_filter[-1]
    assert isinstance(updated, SourceUpdatedEvent)
    assert len(updated.source_params.image_metadata_url) == 5_000
    assert len(updated.source_params.optional_params_url) == 5_000
    assert isinstance(updated.source_params.image_environments, Environment)
    assert isinstance(updated.source_params.delivery_method, DeliveryMethod)


async def test_event_types_narrow_the_stream(node: Anvil) -> None:
    start = node.block_number() + 1
    cast = _Cast()
    marker = random_address()
    emissions = cast.every_event()
    for emission in emissions:
        send(node, emission.event, *emission.values)
    empty = (cast.client, "", 0, 0, 0, 0, False, "", 0, 0)
    send(node, "SourceUpdated", cast.source, empty)
    send(node, "SourceStatusChanged", marker, 0)  # last on chain: once it is here, all before it are

    stream = watch_nexus("SourceUpdated", SourceStatusChangedEvent, from_block=start, poll_interval=0.05)
    try:
        got, _ = await _ours(stream, {*cast.addresses, checksummed(marker)}, 4)
    finally:
        await stream.aclose()

    assert [type(e).__name__ for e in got] == [
        "SourceStatusChangedEvent",
        "SourceUpdatedEvent",
        "SourceUpdatedEvent",
        "SourceStatusChangedEvent",
    ]
    bare = got[2].source_params
    assert (bare.image_metadata_url, bare.optional_params_url, bare.privacy_enabled) == ("", "", False)
    assert bare.image_environments == Environment(0)
    assert bare.delivery_method is DeliveryMethod.MANUAL_CONFIRMATION
    assert got[3] == SourceStatusChangedEvent(
        checksummed(marker),
        SourceStatus.ACTIVE,
        got[3].block_number,
        got[3].transaction_hash,
        got[3].log_index,
        got[3].block_hash,
    )


async def test_unknown_event_type_fails_before_any_network_call() -> None:
    ChainConfig.set_rpc("http://127.0.0.1:9")  # nothing listens there; nothing may be asked
    with pytest.raises(InvalidArgumentError, match="NoSuchEvent"):
        watch_nexus("TaskPublished", "NoSuchEvent")
    with pytest.raises(InvalidArgumentError):
        watch_nexus(int)


@pytest.mark.parametrize("spelling", ["TaskPublished", "task-published", "task_published", "TASKPUBLISHED"])
def test_event_names_are_taken_in_any_spelling(spelling: str) -> None:
    from ogpu.events._codec.abi import event_named

    spec = event_named(spelling)
    assert spec is not None and spec.name == "TaskPublished"
    ChainConfig.set_rpc("http://127.0.0.1:9")  # nothing listens there; nothing may be asked
    watch_nexus(spelling).aclose().close()  # accepted at call time; never started
