"""Providers that cap ``eth_getLogs``: the cap is learned once and kept to (issue 21, point 1).

Each provider profile (``tests/support/capping.py``) refuses in its own words; the
reader must read every log of a 12,500-block history once, in order, asking
too much at most a couple of times when the refusal names the cap and about
log2 times when it does not, and say so in one INFO line, not a WARNING each.
"""

from __future__ import annotations

import logging

import pytest

from ogpu.events._net.ranges import LogRangeReader
from ogpu.events._net.rpc import RpcClient
from tests.support.capping import BLOCK_CAPS, RESULTS_CAPS, UNNAMED_CAPS, CappingProvider
from tests.support.fakenode import NEXUS

pytestmark = pytest.mark.anyio

URL = "http://127.0.0.1:8545/capped"


async def _read_all(provider: CappingProvider) -> tuple[list[int], LogRangeReader]:
    client = RpcClient(URL, transport=provider.transport())
    reader = LogRangeReader(client, NEXUS)
    blocks: list[int] = []
    try:
        async for _, logs in reader.read(0, provider.head):
            blocks.extend(int(raw["blockNumber"], 16) for raw in logs)
    finally:
        await client.aclose()
    return blocks, reader


def _said(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "ogpu.events"]


@pytest.mark.parametrize("name", list(BLOCK_CAPS))
async def test_a_cap_the_refusal_names_costs_at_most_two_refusals(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ogpu.events")
    code, message = BLOCK_CAPS[name]
    provider = CappingProvider(code, message, max_range=500)

    blocks, _ = await _read_all(provider)

    assert blocks == list(range(0, 12_500, 10))
    assert provider.refused <= 2, provider.asked[:6]
    assert len(provider.asked) <= 25 + 2
    said = _said(caplog)
    assert [level for level, _ in said] == [logging.INFO], said
    assert "500-block chunks" in said[0][1]


@pytest.mark.parametrize("cap", [500, 1024, 3000])
@pytest.mark.parametrize("name", list(UNNAMED_CAPS))
async def test_a_cap_the_refusal_does_not_name_is_found_in_about_log2_refusals(
    name: str, cap: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ogpu.events")
    code, message = UNNAMED_CAPS[name]
    provider = CappingProvider(code, message, max_range=cap)

    blocks, reader = await _read_all(provider)

    assert blocks == list(range(0, 12_500, 10))
    assert provider.refused <= 12, provider.asked
    # Once found, kept: the last refusal is early in the read, not one every other request.
    last_refused = max(i for i, (a, b) in enumerate(provider.asked) if b - a + 1 > cap)
    assert all(b - a + 1 <= cap for a, b in provider.asked[last_refused + 1 :])
    assert reader.block_cap is not None and reader.block_cap >= cap * 7 // 8
    assert [level for level, _ in _said(caplog)] == [logging.INFO]


@pytest.mark.parametrize("name", list(RESULTS_CAPS))
async def test_a_results_cap_is_kept_to_by_density(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "ogpu.events")
    code, message = RESULTS_CAPS[name]
    # 100 logs at most an answer, one log every 10 blocks: 1,000 blocks an answer at most.
    provider = CappingProvider(code, message, max_results=100)

    blocks, _ = await _read_all(provider)

    assert blocks == list(range(0, 12_500, 10))
    assert provider.refused <= 3, provider.asked
    assert [level for level, _ in _said(caplog)] == [logging.INFO]


async def test_a_tiny_cap_is_found_too() -> None:
    provider = CappingProvider(-32000, "block range too large", max_range=5, head=999)

    blocks, reader = await _read_all(provider)

    assert blocks == list(range(0, 1_000, 10))
    assert provider.refused <= 12
    assert reader.block_cap == 5
