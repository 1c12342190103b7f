"""Failover on real nodes (issue 18): one anvil behind several endpoints with faults of their own.

Each scenario runs ``watch_attempted`` over two or three endpoints, in
order of preference, while an emitter sends events straight to the node,
switches a fault on at one endpoint mid-stream, and checks what a user
would see: every event exactly once and in chain order, the stream on the
endpoint it should be on (``ogpu.events.health()``), the switch said in one
log line naming both endpoints masked, no endpoint's key in clear anywhere,
and no filter left installed on the node.
"""

from __future__ import annotations

import logging
import re

import pytest

from ogpu.events._devnode.nodes import Anvil
from ogpu.events._stream.hub import active_hubs
from tests.support.failover import (
    Run,
    endpoint_health,
    endpoints,
    foreign_anvil,
    leaked_filters,
    said,
    secrets_shown,
    short_request_timeout,
    state_of,
    switches,
    the_stream,
    wait_state,
)
from tests.support.fakenode import NEXUS
from tests.support.faultproxy import Fault, Rule
from tests.support.faultscenarios import REFILL

pytestmark = pytest.mark.anyio

_CHANGES = frozenset({"eth_getFilterChanges"})


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ogpu.events")


async def test_primary_killed_mid_stream_then_back(
    shared_anvil: Anvil, caplog: pytest.LogCaptureFixture
) -> None:
    async with endpoints(shared_anvil.url, "primary", "secondary") as (primary, secondary):
        async with Run(shared_anvil, [primary, secondary]) as run:
            await run.more(5)
            # The preferred endpoint follows the stream; the other is only probed for its head.
            assert state_of(primary) == "active" and state_of(secondary) == "standby"
            assert primary.polls > 0 and secondary.polls == 0

            await primary.proxy.kill()
            await run.more(10)
            stream = the_stream()
            # The one in use first; the dead one cooling, with what its request got.
            assert [e.url for e in stream.endpoints] == [secondary.masked, primary.masked]
            assert [e.state for e in stream.endpoints] == ["active", "cooling"]
            assert stream.endpoints[1].last_error is not None
            assert stream.watchers == 1 and stream.head is not None and stream.cursor is not None
            assert secondary.polls > 0

            await primary.proxy.revive()
            # Back and current: the stream returns to the endpoint it prefers.
            await wait_state(primary, "active", timeout=30.0)
            polled = primary.polls
            await run.more(5)
            assert primary.polls > polled
            assert state_of(secondary) == "standby"
            delivered, sent = await run.finish()
        leaked = await leaked_filters(shared_anvil.url, [primary.proxy, secondary.proxy])

    assert delivered == list(range(sent))
    lines = said(caplog)
    # Away (a WARNING: the stream lost its preferred endpoint) and back (INFO): two lines.
    assert len(switches(lines, primary, secondary)) == 2, lines
    assert len(switches(said(caplog, logging.WARNING), primary, secondary)) == 1, lines
    assert not secrets_shown(lines, [primary, secondary])
    assert not leaked, "a filter was left installed"


async def test_primary_silent_while_the_chain_runs_ahead(
    shared_anvil: Anvil, caplog: pytest.LogCaptureFixture
) -> None:
    """No answer at all (requests taken, never answered) while blocks come fast.

    Each request the silent primary takes costs a whole request timeout, and
    the chain runs far ahead of the head the stream believed meanwhile (more
    than ``chain.SPIKE`` blocks): the stream must still hand over every event
    once, and come back to the primary without skipping what came in between.
    """
    with short_request_timeout(2.0):
        async with endpoints(shared_anvil.url, "primary", "secondary") as (primary, secondary):
            # About a block every 10 ms: a timeout's worth is well over a hundred blocks.
            async with Run(shared_anvil, [primary, secondary], emit_every=0.005) as run:
                await run.more(20)
                primary.proxy.hang = True
                await run.more(300, timeout=30.0)
                assert state_of(primary) == "cooling" and state_of(secondary) == "active"
                assert endpoint_health(primary).last_error is not None
                primary.proxy.hang = False
                await wait_state(primary, "active", timeout=30.0)
                await run.more(50)
                delivered, sent = await run.finish()
            leaked = await leaked_filters(shared_anvil.url, [primary.proxy, secondary.proxy])

    assert delivered == list(range(sent))
    lines = said(caplog)
    assert len(switches(lines, primary, secondary)) == 2, lines
    assert not secrets_shown(lines, [primary, secondary])
    assert not leaked, "a filter was left installed"


async def test_primary_lagging_five_blocks_is_left(
    shared_anvil: Anvil, caplog: pytest.LogCaptureFixture
) -> None:
    async with endpoints(shared_anvil.url, "primary", "secondary") as (primary, secondary):
        async with Run(shared_anvil, [primary, secondary]) as run:
            await run.more(5)
            assert state_of(primary) == "active"

            primary.proxy.lag = 5
            await wait_state(secondary, "active")
            assert state_of(primary) == "lagging"
            polled = secondary.polls
            await run.more(10)
            # Still behind: the stream stays away from it.
            assert secondary.polls > polled and state_of(primary) == "lagging"
            delivered, sent = await run.finish()
        leaked = await leaked_filters(shared_anvil.url, [primary.proxy, secondary.proxy])

    assert delivered == list(range(sent))
    lines = said(caplog)
    assert len(switches(lines, primary, secondary)) == 1, lines
    assert not secrets_shown(lines, [primary, secondary])
    assert not leaked, "a filter was left installed"


async def test_primary_killed_with_only_a_lagging_endpoint_left(
    shared_anvil: Anvil, caplog: pytest.LogCaptureFixture
) -> None:
    """The one endpoint left lags 5 blocks: its ``[]`` for blocks it has not reached must not be believed.

    It answers heads, headers, ``eth_getLogs`` and filter changes as of 5 blocks
    ago, as a node behind does; the stream rides it rather than stop, and
    takes from it only what it has reached.
    """
    async with endpoints(shared_anvil.url, "primary", "behind") as (primary, behind):
        behind.proxy.lag = 5
        async with Run(shared_anvil, [primary, behind]) as run:
            await run.more(5)
            await wait_state(behind, "lagging")  # once a probe has shown it behind
            assert state_of(primary) == "active"

            await primary.proxy.kill()
            polled = behind.polls
            await run.more(15)
            assert state_of(behind) == "active" and behind.polls > polled

            await primary.proxy.revive()
            await wait_state(primary, "active", timeout=30.0)
            await run.more(5)
            delivered, sent = await run.finish()
        leaked = await leaked_filters(shared_anvil.url, [primary.proxy, behind.proxy])

    assert delivered == list(range(sent))
    lines = said(caplog)
    assert len(switches(lines, primary, behind)) == 2, lines
    assert not secrets_shown(lines, [primary, behind])
    assert not leaked, "a filter was left installed"


async def test_rate_limited_primary_is_left_at_once_and_cools_down(
    shared_anvil: Anvil, caplog: pytest.LogCaptureFixture
) -> None:
    async with endpoints(shared_anvil.url, "primary", "secondary") as (primary, secondary):
        async with Run(shared_anvil, [primary, secondary]) as run:
            await run.more(5)
            [hub] = active_hubs()
            # The stream's ticks when the primary first said 429, and when the
            # secondary was next asked anything.
            ticks: dict[str, int] = {}
            limit = Rule(Fault.RATE_LIMIT, retry_after="30")
            primary.proxy.on_request = lambda _: ticks.setdefault("429", hub.ticks)
            secondary.proxy.on_request = lambda _: "429" in ticks and ticks.setdefault("left", hub.ticks)
            primary.proxy.add(limit)
            # Events keep coming (a wait shorter than the 30 s the primary asked for:
            # the stream did not sit it out).
            await run.more(10, timeout=20.0)
            # Left within a poll interval: the secondary was asked in the same tick or the next.
            assert ticks["left"] - ticks["429"] <= 1, ticks
            assert state_of(primary) == "cooling" and state_of(secondary) == "active"
            why = endpoint_health(primary).last_error
            assert why is not None and "429" in why
            # One answer of 429 was enough to leave, and the cool-down is honoured:
            # nothing more was sent to the primary (no retry, no probe).
            assert limit.fired == 1
            primary.proxy.clear()  # let the filter left on it be uninstalled when the stream ends
            delivered, sent = await run.finish()
        leaked = await leaked_filters(shared_anvil.url, [primary.proxy, secondary.proxy])

    assert delivered == list(range(sent))
    lines = said(caplog)
    assert len(switches(lines, primary, secondary)) == 1, lines
    assert not secrets_shown(lines, [primary, secondary])
    assert not leaked, "a filter was left installed"


@pytest.mark.parametrize("answer", ["error", "empty"], ids=["filter-not-found", "empty-like-erigon"])
async def test_filter_poll_on_a_backend_that_never_saw_the_filter(
    shared_anvil: Anvil, caplog: pytest.LogCaptureFixture, answer: str
) -> None:
    async with endpoints(shared_anvil.url, "balanced", "secondary") as (balanced, secondary):
        async with Run(shared_anvil, [balanced, secondary]) as run:
            await run.more(3)
            # Every third poll goes to a backend of the same URL that never saw the filter.
            stranger = Rule(Fault.UNKNOWN_FILTER, _CHANGES, every=3, times=5, style=answer)
            balanced.proxy.add(stranger)
            await run.more(15)
            # A filter lost is no reason to leave an endpoint that answers.
            assert state_of(balanced) == "active" and state_of(secondary) == "standby"
            delivered, sent = await run.finish()
        leaked = await leaked_filters(shared_anvil.url, [balanced.proxy, secondary.proxy])

    assert stranger.fired > 0, "the fault never fired, so this run proves nothing"
    assert delivered == list(range(sent))
    lines = said(caplog)
    assert not switches(lines, balanced, secondary), lines
    assert secondary.polls == 0
    if answer == "error":
        assert any(re.search(REFILL, line) for line in lines), lines
    assert not secrets_shown(lines, [balanced, secondary])
    assert not leaked, "a filter was left installed"


async def test_another_chain_with_the_same_chain_id_is_excluded(
    shared_anvil: Anvil, caplog: pytest.LogCaptureFixture
) -> None:
    stranger_node = foreign_anvil(chain_id=int(shared_anvil.rpc("eth_chainId"), 16))
    try:
        stranger_node.install_emitter(NEXUS)
        # Ahead of the real chain, so a stream that picks the highest head would pick it.
        stranger_node.mine(shared_anvil.block_number() + 500)
        async with (
            endpoints(shared_anvil.url, "primary", "backup") as (primary, backup),
            endpoints(stranger_node.url, "stranger") as (stranger,),
        ):
            async with Run(shared_anvil, [primary, stranger, backup]) as run:
                # The same task's events on the other chain: never to be delivered.
                for n in range(3):
                    stranger_node.emit(NEXUS, "Attempted", run.task, NEXUS, 10**9 + n)
                await run.more(5)
                await wait_state(stranger, "excluded")
                # With the primary gone, the stream goes to the backup, not to the stranger.
                await primary.proxy.kill()
                await run.more(10)
                for n in range(3, 6):
                    stranger_node.emit(NEXUS, "Attempted", run.task, NEXUS, 10**9 + n)
                await run.more(5)
                assert state_of(backup) == "active" and state_of(stranger) == "excluded"
                why = endpoint_health(stranger).last_error
                assert why is not None and stranger.secret not in why
                delivered, sent = await run.finish()
            # The primary died holding a filter nobody can reach; the others' are gone.
            leaked = await leaked_filters(shared_anvil.url, [backup.proxy])
    finally:
        stranger_node.stop()

    assert delivered == list(range(sent)), "lost, repeated or foreign events"
    # Never followed: asked for its head and blocks only, never for logs or a filter.
    assert stranger.polls == 0 and not stranger.proxy.installed
    warnings = [line for line in said(caplog, logging.WARNING) if stranger.masked in line]
    assert len(warnings) == 1, said(caplog, logging.WARNING)
    lines = said(caplog)
    assert len(switches(lines, primary, backup)) == 1, lines
    assert not secrets_shown(lines, [primary, backup, stranger])
    assert not leaked, "a filter was left installed"
