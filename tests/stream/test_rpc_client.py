"""The JSON-RPC client's envelopes and error mapping (what faults mean: ``tests/unit/test_faults.py``)."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from ogpu.events._net.faults import Fault, classify
from ogpu.events._net.rpc import RpcClient
from ogpu.types import (
    RpcError,
    RpcHttpError,
    RpcProtocolError,
    RpcResponseError,
    RpcTransportError,
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
