"""EndpointChooser, the pure part of failover: which endpoint is active, in what order, what to probe.

Each row is a story of observations (at virtual times) and what the chooser
must say after it. No I/O, no clock: the rules can be read off the table.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from ogpu.events._net.choice import EndpointChooser

Step = Callable[[EndpointChooser], None]


def up(i: int, at: float, head: int) -> Step:
    """Endpoint ``i`` verified and answering with ``head`` at time ``at``."""

    def step(c: EndpointChooser) -> None:
        c.verified(i)
        c.answered(i, at, 0.01, head)

    return step


def fail(i: int, at: float, retry_after: float | None = None) -> Step:
    return lambda c: c.failed(i, at, "HTTP 503 Service Unavailable", retry_after)


def exclude(i: int) -> Step:
    return lambda c: c.exclude(i, "excluded: it serves chain 1, not chain 1071")


def choose(at: float) -> Step:
    def step(c: EndpointChooser) -> None:
        c.choose(at)

    return step


@dataclass
class Row:
    story: list[Step]
    now: float
    active: int | None
    states: list[str]
    order: list[int] | None = None


ROWS = {
    "all healthy: the first": Row(
        [up(0, 0, 10), up(1, 0, 10), up(2, 0, 10)], 1, 0, ["active", "standby", "standby"]
    ),
    "nothing verified yet: the first, to be verified": Row([], 0, 0, ["active", "standby", "standby"]),
    "first failed: the next, the first cools": Row(
        [up(0, 0, 10), up(1, 0, 10), up(2, 0, 10), choose(0), fail(0, 1)],
        1.5,
        1,
        ["cooling", "active", "standby"],
        [1, 2],
    ),
    "cool-down over but unproven: still not active, tried last": Row(
        [up(0, 0, 10), up(1, 0, 10), choose(0), fail(0, 1), choose(1.5)],
        5,
        1,
        ["cooling", "active"],
        [1, 0],
    ),
    "the first answers again, current: back to it": Row(
        [up(0, 0, 10), up(1, 0, 10), choose(0), fail(0, 1), choose(1.5), up(1, 5, 12), up(0, 5, 12)],
        5,
        0,
        ["active", "standby"],
    ),
    "the first answers again two blocks behind: not yet back": Row(
        [up(0, 0, 10), up(1, 0, 10), choose(0), fail(0, 1), choose(1.5), up(1, 5, 12), up(0, 5, 10)],
        5,
        1,
        ["standby", "active"],
    ),
    "a 429's Retry-After cools that endpoint for as long": Row(
        [up(0, 0, 10), up(1, 0, 10), choose(0), fail(0, 1, retry_after=30)],
        30,
        1,
        ["cooling", "active"],
        [1],
    ),
    "every endpoint behind a Retry-After: nothing to try": Row(
        [up(0, 0, 10), up(1, 0, 10), choose(0), fail(0, 1, 30), fail(1, 1, 30)],
        2,
        None,
        ["cooling", "cooling"],
        [],
    ),
    "every endpoint cooling by our own rule: each tried anyway": Row(
        [up(0, 0, 10), up(1, 0, 10), choose(0), fail(0, 1), fail(1, 1)],
        1.2,
        None,
        ["cooling", "cooling"],
        [0, 1],
    ),
    "lagging more than max_lag: left": Row(
        [up(0, 0, 10), up(1, 0, 10), choose(0), up(1, 1, 20), up(0, 1.1, 16)],
        1.2,
        1,
        ["lagging", "active"],
    ),
    "lagging within max_lag: stays": Row(
        [up(0, 0, 10), up(1, 0, 10), choose(0), up(1, 1, 20), up(0, 1.1, 17)],
        1.2,
        0,
        ["active", "standby"],
    ),
    "head stalled while another moved: left": Row(
        [up(0, 0, 10), up(1, 0, 10), choose(0), up(0, 1, 11), up(0, 30, 11), up(1, 30, 12)],
        30,
        1,
        ["lagging", "active"],
    ),
    "a quiet chain stalls everyone alike: stays": Row(
        [up(0, 0, 10), up(1, 0, 10), choose(0), up(0, 1, 11), up(0, 30, 11), up(1, 30, 11)],
        30,
        0,
        ["active", "standby"],
    ),
    "excluded: never chosen, never tried": Row(
        [up(0, 0, 10), exclude(1), up(2, 0, 10), choose(0), fail(0, 1)],
        1.5,
        2,
        ["cooling", "excluded", "active"],
        [2],
    ),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_chooser(row: Row) -> None:
    names = [f"https://ep{i}.example" for i in range(len(row.states))]
    chooser = EndpointChooser(names, stall_after=20.0)
    for step in row.story:
        step(chooser)
    assert chooser.choose(row.now) == row.active
    assert [chooser.state(i, row.now).value for i in range(len(names))] == row.states
    if row.order is not None:
        assert chooser.order(row.now) == row.order


def test_steady_state_probes_one_standby_every_ten_requests_in_turn() -> None:
    chooser = EndpointChooser(["a", "b", "c"], probe_every=10, probe_period=1e9)
    for i in range(3):
        chooser.verified(i)
        chooser.answered(i, 0.0, 0.01, 10)
    chooser.choose(0.0)
    probed: list[int] = []
    for request in range(100):
        chooser.request_sent()
        for i in chooser.probes_due(float(request)):
            chooser.probed(i, float(request))
            probed.append(i)
    # 100 requests, 10 probes (0.1 per tick), the two standbys alternately; the active never.
    assert len(probed) == 10
    assert set(probed) == {1, 2}
    assert all(a != b for a, b in itertools.pairwise(probed))


def test_an_endpoint_whose_cool_down_ended_is_probed_at_once_and_once() -> None:
    chooser = EndpointChooser(["a", "b"], probe_every=1000, probe_period=1e9)
    for i in range(2):
        chooser.verified(i)
        chooser.answered(i, 0.0, 0.01, 10)
    chooser.choose(0.0)
    chooser.failed(0, 1.0, "connection refused")
    chooser.choose(1.0)
    assert chooser.probes_due(1.5) == []  # still cooling
    assert chooser.probes_due(2.0) == [0]
    chooser.probed(0, 2.0)
    assert chooser.probes_due(2.5) == []
    chooser.failed(0, 2.6, "connection refused")  # the probe failed: 2 s more
    assert chooser.probes_due(3.0) == []
    assert chooser.probes_due(4.7) == [0]


def test_unverified_standbys_are_probed_first_thing() -> None:
    chooser = EndpointChooser(["a", "b", "c"])
    chooser.verified(0)
    chooser.answered(0, 0.0, 0.01, 10)
    chooser.choose(0.0)
    assert chooser.probes_due(0.0) == [1, 2]
