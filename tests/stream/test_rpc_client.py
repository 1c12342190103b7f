"""The JSON-RPC client's envelopes and error mapping, and what each fault means to the stream."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from ogpu.events._net import faults as _faults
from ogpu.events._net.faults import Backoff, Fault, Retrier, classify, suggested_span
from ogpu.events._net.rpc import RpcClient
from ogpu.types import (
    RpcError,
    RpcHttpError,
    RpcProtocolError,
    RpcResponseError,
    RpcTransportError,
    UnsupportedNodeError,
)
from tests.support.fakenode import URL, FakeNode, html_response, http_response, mounted

pytestmark = pytest.mark.anyio


@pytest.fixture
def node() -> Iterator[FakeNode]:
    fake = FakeNode()
    with mounted(fake):
        yield fake


def _bodies(router: respx.MockRouter) -> list[Any]:
    return [json.loads(call.request.content) for call in router.calls]


# --- envelopes ---


async def test_single_call_envelope() -> None:
    fake = FakeNode()
    with mounted(fake) as router:
        client = RpcClient(URL)
        assert await client.call("eth_chainId") == hex(1071)
        assert await client.call("eth_getBlockByNumber", ["0x0", False]) is not None
        await client.aclose()
        first, second = _bodies(router)
        request = router.calls[0].request
    assert first == {"jsonrpc": "2.0", "id": first["id"], "method": "eth_chainId", "params": []}
    assert second["params"] == ["0x0", False]
    assert isinstance(first["id"], int)
    assert second["id"] != first["id"]
    assert request.headers["content-type"] == "application/json"
    assert client.requests_sent == 2


async def test_batch_is_one_request_with_distinct_ids_and_answers_in_call_order() -> None:
    fake = FakeNode(reverse_answers=True)
    fake.mine(3)
    with mounted(fake) as router:
        client = RpcClient(URL)
        answers = await client.batch(
            [("eth_blockNumber", []), ("eth_chainId", []), ("eth_getBlockByNumber", ["0x2", False])]
        )
        await client.aclose()
        (body,) = _bodies(router)
    assert answers[0] == "0x3"
    assert answers[1] == hex(1071)
    assert answers[2]["number"] == "0x2"
    assert [item["method"] for item in body] == ["eth_blockNumber", "eth_chainId", "eth_getBlockByNumber"]
    assert len({item["id"] for item in body}) == 3
    assert client.requests_sent == 1


async def test_batch_returns_each_calls_error_in_its_place(node: FakeNode) -> None:
    node.fail_rpc("eth_getFilterChanges", -32000, "filter not found")
    client = RpcClient(URL)
    number, changes = await client.batch([("eth_blockNumber", []), ("eth_getFilterChanges", ["0x1"])])
    await client.aclose()
    assert number == "0x0"
    assert isinstance(changes, RpcResponseError)
    assert (changes.code, changes.args[0], changes.method) == (
        -32000,
        "filter not found",
        "eth_getFilterChanges",
    )


async def test_node_that_rejects_batches_gets_single_calls_from_then_on() -> None:
    fake = FakeNode(batch_supported=False)
    with mounted(fake):
        client = RpcClient(URL)
        calls: list[tuple[str, list[Any]]] = [("eth_blockNumber", []), ("eth_chainId", [])]
        assert await client.batch(calls) == ["0x0", hex(1071)]
        assert fake.requests == [["eth_blockNumber", "eth_chainId"], ["eth_blockNumber"], ["eth_chainId"]]
        assert await client.batch(calls) == ["0x0", hex(1071)]
        await client.aclose()
    assert fake.requests[3:] == [["eth_blockNumber"], ["eth_chainId"]]


async def test_rate_limit_on_a_whole_batch_is_retryable_and_keeps_batching() -> None:
    limited = {"jsonrpc": "2.0", "id": None, "error": {"code": -32005, "message": "rate limit exceeded"}}
    fake = FakeNode()
    answers = [httpx.Response(200, json=limited)]

    def answer(request: httpx.Request) -> httpx.Response:
        return answers.pop() if answers else fake(request)

    with respx.mock() as router:
        router.post(URL).mock(side_effect=answer)
        client = RpcClient(URL)
        calls: list[tuple[str, list[Any]]] = [("eth_blockNumber", []), ("eth_chainId", [])]
        with pytest.raises(RpcResponseError, match="rate limit"):
            await client.batch(calls)
        assert await client.batch(calls) == ["0x0", hex(1071)]
        await client.aclose()
    assert client.requests_sent == 2, "still one request per batch after the rate limit"


async def test_batch_answer_missing_an_id_is_a_protocol_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        first = json.loads(request.content)[0]
        return httpx.Response(200, json=[{"jsonrpc": "2.0", "id": first["id"], "result": "0x1"}])

    with respx.mock() as router:
        router.post(URL).mock(side_effect=answer)
        client = RpcClient(URL)
        with pytest.raises(RpcProtocolError):
            await client.batch([("eth_blockNumber", []), ("eth_chainId", [])])
        await client.aclose()


async def test_answer_to_another_request_is_a_protocol_error() -> None:
    with respx.mock() as router:
        router.post(URL).mock(
            return_value=httpx.Response(200, json={"jsonrpc": "2.0", "id": 999, "result": "0x1"})
        )
        client = RpcClient(URL)
        with pytest.raises(RpcProtocolError, match="does not match"):
            await client.call("eth_blockNumber")
        await client.aclose()


# --- errors ---


async def test_json_rpc_error_becomes_a_response_error_with_code_message_and_data(node: FakeNode) -> None:
    node.fail_rpc("eth_getLogs", -32005, "query returned more than 10000 results")
    client = RpcClient(URL)
    with pytest.raises(RpcResponseError) as caught:
        await client.call("eth_getLogs", [{}])
    await client.aclose()
    assert caught.value.code == -32005
    assert caught.value.args[0] == "query returned more than 10000 results"
    assert caught.value.method == "eth_getLogs"
    assert str(caught.value).startswith("JSON-RPC error -32005: query returned more than 10000 results")
    # A JSON-RPC error is still an answer: the endpoint speaks JSON-RPC.
    assert client.ever_answered


async def test_unknown_method_is_a_response_error(node: FakeNode) -> None:
    client = RpcClient(URL)
    with pytest.raises(RpcResponseError) as caught:
        await client.call("eth_subscribe", ["logs"])
    await client.aclose()
    assert caught.value.code == -32601
    assert classify(caught.value) is Fault.UNSUPPORTED


def _error_body(code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}}


@pytest.mark.parametrize(
    ("response", "status"),
    [
        (http_response(500), 500),
        (http_response(502, {"error": "bad gateway"}), 502),
        (html_response(503), 503),
        (httpx.Response(504, text="upstream timed out"), 504),
        (http_response(429), 429),
        (html_response(404), 404),
        (http_response(401, {"message": "invalid api key"}), 401),
        (httpx.Response(403, text="Forbidden"), 403),
        (http_response(405), 405),
    ],
)
async def test_http_status_other_than_200_is_an_http_error(response: httpx.Response, status: int) -> None:
    with respx.mock() as router:
        router.post(URL).mock(return_value=response)
        client = RpcClient(URL)
        with pytest.raises(RpcHttpError) as caught:
            await client.call("eth_blockNumber")
        await client.aclose()
    assert caught.value.status == status
    assert not client.ever_answered
    assert classify(caught.value) is (Fault.TRANSIENT if status == 429 or status >= 500 else Fault.FATAL)


async def test_4xx_carrying_a_json_rpc_error_reports_the_nodes_message() -> None:
    # Several providers send their JSON-RPC error with status 400; the message is what helps.
    with respx.mock() as router:
        router.post(URL).mock(return_value=http_response(400, _error_body(-32602, "invalid argument 0")))
        client = RpcClient(URL)
        with pytest.raises(RpcResponseError) as caught:
            await client.call("eth_getLogs", [{}])
        await client.aclose()
    assert (caught.value.code, caught.value.args[0]) == (-32602, "invalid argument 0")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0", 0.0), ("1.5", 1.5), ("-3", 0.0), ("soon", None), ("", None)],
)
async def test_429_retry_after_in_seconds(header: str, expected: float | None) -> None:
    with respx.mock() as router:
        router.post(URL).mock(return_value=http_response(429, headers={"Retry-After": header}))
        client = RpcClient(URL)
        with pytest.raises(RpcHttpError) as caught:
            await client.call("eth_blockNumber")
        await client.aclose()
    assert caught.value.retry_after == expected


async def test_429_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    past = email.utils.formatdate(time.time() - 120, usegmt=True)
    with respx.mock() as router:
        router.post(URL).mock(
            side_effect=[
                http_response(429, headers={"Retry-After": when}),
                http_response(503, headers={"Retry-After": past}),
            ]
        )
        client = RpcClient(URL)
        with pytest.raises(RpcHttpError) as future_date:
            await client.call("eth_blockNumber")
        with pytest.raises(RpcHttpError) as past_date:
            await client.call("eth_blockNumber")
        await client.aclose()
    assert future_date.value.retry_after is not None
    # HTTP dates have whole seconds; the wait is about two minutes either way.
    assert 100 < future_date.value.retry_after <= 121
    assert past_date.value.retry_after == 0.0


@pytest.mark.parametrize(
    "response",
    [
        html_response(200),
        httpx.Response(200, text="OK"),
        httpx.Response(200, content=b"\xff\xfe\x00garbage"),
        httpx.Response(200, text='{"jsonrpc": "2.0", "id": 1, "resu'),
        http_response(200, {"status": "ok"}),
        http_response(200, [1, 2, 3]),
        http_response(200, {"jsonrpc": "1.0", "id": 1, "result": "0x1"}),
        http_response(200, {"jsonrpc": "2.0", "id": 1, "error": "boom"}),
    ],
    ids=[
        "html",
        "text",
        "binary",
        "truncated json",
        "json object",
        "json array",
        "wrong version",
        "bad error",
    ],
)
async def test_answer_that_is_not_json_rpc_is_a_protocol_error(response: httpx.Response) -> None:
    with respx.mock() as router:
        router.post(URL).mock(return_value=response)
        client = RpcClient(URL)
        with pytest.raises(RpcProtocolError):
            await client.call("eth_blockNumber")
        await client.aclose()
    assert classify(RpcProtocolError("x")) is Fault.TRANSIENT


async def test_html_answer_names_its_content_type() -> None:
    with respx.mock() as router:
        router.post(URL).mock(return_value=html_response(200))
        client = RpcClient(URL)
        with pytest.raises(RpcProtocolError, match="text/html"):
            await client.call("eth_blockNumber")
        await client.aclose()


@pytest.mark.parametrize(
    ("exception", "maybe_processed"),
    [
        (httpx.ConnectError, False),
        (httpx.ConnectTimeout, False),
        (httpx.PoolTimeout, False),
        (httpx.ReadTimeout, True),
        (httpx.WriteTimeout, True),
        (httpx.ReadError, True),
        (httpx.RemoteProtocolError, True),
    ],
)
async def test_transport_failures_say_whether_the_node_may_have_acted(
    exception: type[httpx.TransportError], maybe_processed: bool
) -> None:
    with respx.mock() as router:
        router.post(URL).mock(side_effect=exception)
        client = RpcClient(URL)
        with pytest.raises(RpcTransportError) as caught:
            await client.call("eth_getFilterChanges", ["0x1"])
        await client.aclose()
    assert caught.value.maybe_processed is maybe_processed
    assert caught.value.method == "eth_getFilterChanges"
    assert isinstance(caught.value.__cause__, exception)
    assert classify(caught.value) is Fault.TRANSIENT


SECRET_URL = "https://alice:hunter2@rpc.example.com/v2/AbCdEfGhIjKlMnOpQrStUv123456?apikey=topsecret"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.ConnectError("refused"),
        http_response(502),
        html_response(200),
        http_response(200, _error_body(-32000, "boom")),
    ],
    ids=["transport", "http", "protocol", "response"],
)
async def test_errors_mask_credentials_in_the_url(answer: httpx.Response | Exception) -> None:
    with respx.mock() as router:
        router.route(host="rpc.example.com").mock(side_effect=[answer])
        client = RpcClient(SECRET_URL)
        with pytest.raises(RpcError) as caught:
            await client.call("eth_blockNumber")
        await client.aclose()
    text = str(caught.value)
    for secret in ("alice", "hunter2", "AbCdEfGhIjKlMnOpQrStUv123456", "topsecret"):
        assert secret not in text
        assert secret not in caught.value.url
    assert "rpc.example.com" in text


async def test_requests_are_counted_whatever_the_outcome() -> None:
    with respx.mock() as router:
        router.post(URL).mock(
            side_effect=[httpx.ConnectError("refused"), http_response(502), html_response()]
        )
        client = RpcClient(URL)
        for _ in range(3):
            with pytest.raises(RpcError):
                await client.call("eth_blockNumber")
        await client.aclose()
    assert client.requests_sent == 3
    assert not client.ever_answered


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
