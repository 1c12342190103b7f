"""What each fault means to the stream (retry, recreate, shrink, raise), backoff, retries: tables, no I/O."""

from __future__ import annotations

import pytest

from ogpu.events._net import faults as _faults
from ogpu.events._net.faults import Backoff, Fault, Retrier, classify, suggested_span
from ogpu.types import (
    RpcHttpError,
    RpcProtocolError,
    RpcResponseError,
    RpcTransportError,
    UnsupportedNodeError,
)

pytestmark = pytest.mark.anyio


# --- what each fault means ---

FILTER_LOST_MESSAGES = [
    "filter not found",
    "Filter not found",
    "filter 0x1f does not exist",
    "filter id 0xabc not found",
    "unknown filter",
    "filter has expired",
    "Filter with id: '5' does not exist.",  # Nethermind
    "Filter id 22 does not exist.",  # Frontier (Moonbeam)
]


@pytest.mark.parametrize("code", [-32000, -32600, -32602, -32001])
@pytest.mark.parametrize("message", FILTER_LOST_MESSAGES)
def test_filter_lost_under_every_code_seen(code: int, message: str) -> None:
    assert classify(RpcResponseError(message, code=code)) is Fault.FILTER_LOST


@pytest.mark.parametrize(
    ("code", "message", "fault"),
    [
        # provider range and result-count caps
        (
            -32005,
            "query returned more than 10000 results. Try with this block range [0x1, 0x2f].",
            Fault.RANGE_TOO_LARGE,
        ),
        (-32005, "query returned more than 10000 results", Fault.RANGE_TOO_LARGE),
        (-32000, "block range too large", Fault.RANGE_TOO_LARGE),
        (-32602, "max is 1k blocks", Fault.RANGE_TOO_LARGE),
        (-32000, "exceed maximum block range: 5000", Fault.RANGE_TOO_LARGE),
        (-32602, "query exceeds max block range 100000", Fault.RANGE_TOO_LARGE),
        (
            -32602,
            "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range "
            "and no limit on the response size, or you can request any block range with a cap of 10K logs "
            "in the response. Based on your parameters, this block range should work: [0x10, 0x1f]",
            Fault.RANGE_TOO_LARGE,
        ),
        (-32005, "", Fault.RANGE_TOO_LARGE),
        (-32000, "eth_getLogs range is too wide", Fault.RANGE_TOO_LARGE),
        # rate limits, whatever the code
        (429, "Too Many Requests", Fault.TRANSIENT),
        (-32005, "daily request count exceeded, request rate limited", Fault.TRANSIENT),
        (-32007, "rate limit exceeded", Fault.TRANSIENT),
        (-32000, "Your app has exceeded its compute units per second capacity", Fault.TRANSIENT),
        # methods the node does not offer
        (-32601, "the method eth_newFilter does not exist/is not available", Fault.UNSUPPORTED),
        (-32601, "Method not found", Fault.UNSUPPORTED),
        (-32000, "the method eth_getFilterChanges does not exist/is not available", Fault.UNSUPPORTED),
        (-32601, "the method eth_uninstallFilter does not exist/is not available", Fault.UNSUPPORTED),
        (-32000, "eth_newFilter is not supported on this endpoint", Fault.UNSUPPORTED),
        (-32600, "method eth_getFilterChanges is disabled", Fault.UNSUPPORTED),
        # a node catching up
        (-32000, "header not found", Fault.TRANSIENT),
        (-32000, "missing trie node", Fault.TRANSIENT),
        (-32603, "internal error", Fault.TRANSIENT),
        # mistakes no retry fixes
        (-32602, "invalid argument 0: hex string without 0x prefix", Fault.FATAL),
        (-32700, "parse error", Fault.FATAL),
        (-32600, "invalid request", Fault.FATAL),
    ],
)
def test_classify_provider_messages(code: int, message: str, fault: Fault) -> None:
    assert classify(RpcResponseError(message, code=code)) is fault


@pytest.mark.parametrize(
    ("exc", "fault"),
    [
        (RpcTransportError("reset"), Fault.TRANSIENT),
        (RpcTransportError("refused", maybe_processed=False), Fault.TRANSIENT),
        (RpcProtocolError("html"), Fault.TRANSIENT),
        (RpcHttpError("x", status=429), Fault.TRANSIENT),
        (RpcHttpError("x", status=500), Fault.TRANSIENT),
        (RpcHttpError("x", status=503), Fault.TRANSIENT),
        (RpcHttpError("x", status=400), Fault.FATAL),
        (RpcHttpError("x", status=401), Fault.FATAL),
        (RpcHttpError("x", status=404), Fault.FATAL),
        (UnsupportedNodeError("no logs"), Fault.FATAL),
        (ValueError("a bug"), Fault.FATAL),
    ],
)
def test_classify_transport_and_http_faults(exc: BaseException, fault: Fault) -> None:
    assert classify(exc) is fault


@pytest.mark.parametrize(
    ("message", "span"),
    [
        ("query returned more than 10000 results. Try with this block range [0x1, 0x2f].", 47),
        ("Try with this block range [0xA, 0xa].", 1),
        ("this block range should work: [0x10, 0x1f]", 16),
        ("block range should work: [100, 199]", 100),
        ("up to a 2K block range ... this block range should work: [0x10, 0x1f]", 16),
        ("max is 1k blocks", 1000),
        ("max is 1K blocks", 1000),
        ("exceed maximum block range: 5000", 5000),
        ("query exceeds max block range 100000", 100000),
        ("You can make eth_getLogs requests with up to a 500 block range", 500),
        ("range limit exceeded: 2048 blocks", 2048),
        ("block range too large", None),
        ("query returned more than 10000 results", None),
        ("Try with this block range [0x2f, 0x1].", None),
        ("", None),
    ],
)
def test_suggested_span(message: str, span: int | None) -> None:
    assert suggested_span(message) == span


# --- backoff and retries ---


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(base=0.25, cap=15.0, rng=lambda: 1.0)
    delays = [backoff.next_delay() for _ in range(9)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]
    backoff.reset()
    assert backoff.next_delay() == 0.25


def test_backoff_jitter_stays_in_the_upper_half() -> None:
    low = Backoff(base=1.0, rng=lambda: 0.0)
    assert [low.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]


def test_retry_after_wins_when_longer_and_is_bounded() -> None:
    backoff = Backoff(base=0.25, rng=lambda: 1.0)
    assert backoff.next_delay(RpcHttpError("x", status=429, retry_after=30.0)) == 30.0
    assert backoff.next_delay(RpcHttpError("x", status=429, retry_after=0.0)) == 0.5
    assert backoff.next_delay(RpcHttpError("x", status=429, retry_after=86400.0)) == 300.0


async def test_retrier_logs_each_retry_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    retrier = Retrier(lambda: True, "http://node/***")
    retrier.backoff = Backoff(base=0.001, cap=0.002)
    with caplog.at_level("WARNING", logger="ogpu.events"):
        await retrier.pause(RpcHttpError("HTTP 502", status=502), "polling")
        await retrier.pause(RpcHttpError("HTTP 502", status=502), "polling")
    messages = [r.getMessage() for r in caplog.records if r.name == "ogpu.events"]
    assert len(messages) == 2
    assert "polling failed at http://node/*** (try 1): HTTP 502" in messages[0]
    assert "(try 2)" in messages[1]


async def test_retrier_gives_up_on_an_endpoint_that_never_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_faults, "STARTUP_DEADLINE", 0.0)
    never = Retrier(lambda: False, "http://node")
    with pytest.raises(RpcProtocolError):
        await never.pause(RpcProtocolError("html"), "polling")
    # One that has answered before keeps retrying: a bad moment, not a wrong URL.
    answered = Retrier(lambda: True, "http://node")
    answered.backoff = Backoff(base=0.001, cap=0.002)
    await answered.pause(RpcProtocolError("html"), "polling")
