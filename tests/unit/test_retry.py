"""``Retrier.run``: the library's one call-classify-pause loop (poll loop, range reads, after= check)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from ogpu.events._net.faults import Backoff, Fault, Retrier, current_failures
from ogpu.types import RpcHttpError, RpcResponseError, UnsupportedNodeError

pytestmark = pytest.mark.anyio

BUSY = RpcHttpError("HTTP 502", status=502)  # transient
LOST = RpcResponseError("filter not found", code=-32000)  # a lost filter
MISSING = RpcResponseError("the method eth_getLogs does not exist", code=-32601)  # unsupported
REFUSED = RpcHttpError("HTTP 401", status=401)  # fatal


def _retrier() -> Retrier:
    retrier = Retrier(lambda: True, "http://node/***")
    retrier.backoff = Backoff(base=0.001, cap=0.002)
    return retrier


def _failing(*faults: Exception, answer: str = "0x1") -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """An attempt that raises ``faults`` one per call, then answers; and the count of its calls."""
    calls = [0]

    async def attempt() -> str:
        calls[0] += 1
        if calls[0] <= len(faults):
            raise faults[calls[0] - 1]
        return answer

    return attempt, calls


async def test_a_transient_fault_is_retried_with_a_warning_each_then_the_answer_is_returned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retrier = _retrier()
    attempt, calls = _failing(BUSY, BUSY)
    with caplog.at_level("WARNING", logger="ogpu.events"):
        assert await retrier.run(attempt, "eth_getLogs 1..9") == "0x1"
    assert calls[0] == 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "ogpu.events"]
    assert [w.split(" (try")[0] for w in warnings] == ["eth_getLogs 1..9 failed at http://node/***"] * 2
    # Succeeded: the backoff starts over, and nothing is reported as failing.
    assert retrier.backoff.attempts == 0 and retrier.failure is None and current_failures() == []


@pytest.mark.parametrize(
    ("fault", "retried", "calls"),
    [
        (LOST, (Fault.TRANSIENT,), 1),  # not a kind the caller retries: raised at once
        (LOST, (Fault.TRANSIENT, Fault.FILTER_LOST), 2),
        (REFUSED, (Fault.TRANSIENT, Fault.FILTER_LOST, Fault.RANGE_TOO_LARGE), 1),  # fatal: never retried
    ],
)
async def test_only_the_kinds_of_fault_a_caller_names_are_retried(
    fault: Exception, retried: tuple[Fault, ...], calls: int
) -> None:
    attempt, made = _failing(fault)
    if calls == 1:
        with pytest.raises(type(fault)):
            await _retrier().run(attempt, "poll", retried=retried)
    else:
        assert await _retrier().run(attempt, "poll", retried=retried) == "0x1"
    assert made[0] == calls


async def test_an_unsupported_method_raises_what_the_caller_makes_of_it() -> None:
    attempt, calls = _failing(MISSING)
    with pytest.raises(UnsupportedNodeError, match="node offers no eth_getLogs") as raised:
        await _retrier().run(
            attempt,
            "eth_getLogs",
            unsupported=lambda exc: UnsupportedNodeError(f"node offers no eth_getLogs: {exc}"),
        )
    assert raised.value.__cause__ is MISSING and calls[0] == 1
    # Without a translation it is raised as it is.
    with pytest.raises(RpcResponseError):
        await _retrier().run(_failing(MISSING)[0], "eth_getLogs")


async def test_tries_bound_the_calls_made() -> None:
    attempt, calls = _failing(BUSY, BUSY, BUSY)
    with pytest.raises(RpcHttpError):
        await _retrier().run(attempt, "eth_getLogs by block hash", tries=3)
    assert calls[0] == 3
