"""Exactly once through node faults: a real anvil behind a fault-injecting proxy.

Every scenario in :mod:`tests.support.faultscenarios` emits events at a steady rate
while the proxy misbehaves; the watcher must yield each one exactly once, in
chain order, and the stream must say in its log what it did to recover.
"""

from __future__ import annotations

import logging
import re

import pytest

from ogpu.events._devnode.nodes import Anvil
from tests.support.faultscenarios import ISSUE8_SCENARIOS, SCENARIOS, Scenario, run_scenario

ALL_SCENARIOS = SCENARIOS + ISSUE8_SCENARIOS

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("scenario", ALL_SCENARIOS, ids=[s.key for s in ALL_SCENARIOS])
async def test_every_event_arrives_exactly_once_in_order(
    shared_anvil: Anvil, scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ogpu.events")

    outcome = await run_scenario(shared_anvil.url, scenario)

    assert outcome.error is None
    assert outcome.leaked == 0, "a filter was left installed on the node"
    assert outcome.delivered == outcome.sent, (
        f"lost {outcome.lost}, repeated {outcome.repeated}, in order: {outcome.in_order}"
    )
    if scenario.rules:
        assert outcome.fired > 0, "the fault never fired, so this run proves nothing"
    if scenario.expect_log is not None:
        said = [
            r.getMessage() for r in caplog.records if r.name == "ogpu.events" and r.levelno >= logging.INFO
        ]
        assert any(re.search(scenario.expect_log, line) for line in said), said
