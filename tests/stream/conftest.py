"""Fixtures for the stream on the in-memory node: a gate in front of it, watchers stopped, INFO logs kept."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import respx

from ogpu import ChainConfig
from tests.support.fakenode import FakeNode
from tests.support.streams import Gate, stop_started


@pytest.fixture
def gate(node: FakeNode) -> Iterator[Gate]:
    """The module's ``node`` served through a :class:`Gate` (respx), ChainConfig pointed at it."""
    ChainConfig.set_rpc(node.url)
    held = Gate(node)
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        router.post(node.url).mock(side_effect=held)
        yield held


@pytest.fixture
async def stop_started_watchers(anyio_backend: str) -> AsyncIterator[None]:
    """Stop the watchers ``tests.support.streams.start`` ran, when the test ends."""
    yield
    await stop_started()


@pytest.fixture
def info_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Keep the stream's INFO records and above."""
    caplog.set_level(logging.INFO, logger="ogpu.events")
