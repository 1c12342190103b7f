"""A small JSON-RPC 2.0 client over ``httpx.AsyncClient``.

This module is the one edge where transport failures become ``ogpu`` errors:
everything above it sees :mod:`ogpu._errors` types only. It does not retry;
whether a failed call may be repeated depends on the call (a lost
``eth_getFilterChanges`` answer must never be simply repeated), so that
choice belongs to the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import itertools
import json
import logging
import os
import re
import socket
import time
from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from ogpu._errors import (
    RpcHttpError,
    RpcProtocolError,
    RpcResponseError,
    RpcTransportError,
)
from ogpu.chain import mask_url
from ogpu.events._net.faults import Fault, classify

__all__ = ["Call", "JsonRpc", "RpcClient", "batch_label"]

log = logging.getLogger("ogpu.events")

Call = tuple[str, Sequence[Any]]

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Used instead of DEFAULT_TIMEOUT until the endpoint first answers, so that a
# host that accepts connections and never answers is reported within ~10 s of
# starting, and one whose name or route hangs within a few seconds.
STARTUP_TIMEOUT = httpx.Timeout(8.0, connect=2.0)
_BATCH_REFUSAL = re.compile(r"batch", re.IGNORECASE)
# Transports that an active ``ogpu.events.testing.FakeNode`` hands over, by
# URL: a client opened on one of these URLs talks to the in-memory node
# without a socket, whatever else (respx, say) patches httpx meanwhile.
FAKE_TRANSPORTS: dict[str, httpx.AsyncBaseTransport] = {}

# httpx logs every request's URL at INFO ("HTTP Request: POST https://…/v3/KEY"),
# and a service that sets up logging with basicConfig(level=INFO) would write
# the API key of every poll to its log. The URLs this library's clients use,
# as given and as httpx spells them, mapped to their masked form: a filter on
# httpx's and httpcore's loggers rewrites exactly these, so the log keeps its
# lines (masked) and other clients' URLs are left as they are.
_SECRET_URLS: dict[str, str] = {}
# The same, longest first: a URL that extends another (its query added) is
# replaced whole before the shorter one could leave its tail showing.
_SECRET_ORDER: list[tuple[str, str]] = []
_HTTP_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


class _MaskOurUrls(logging.Filter):
    """Masks the URLs of this library's requests in the records httpx and httpcore log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _SECRET_URLS:
            return True
        if isinstance(record.msg, str):
            record.msg = _masked(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_masked_arg(arg) for arg in record.args)
        return True


def _masked(text: str) -> str:
    for url, masked in _SECRET_ORDER:
        if url in text:
            text = text.replace(url, masked)
    return text


def _masked_arg(arg: object) -> object:
    if isinstance(arg, str | httpx.URL):
        text = str(arg)
        masked = _masked(text)
        if masked != text:
            return masked
    return arg


_FILTER = _MaskOurUrls()


def _keep_secret(url: str) -> None:
    """Make sure no httpx or httpcore record shows ``url`` unmasked."""
    masked = mask_url(url)
    if masked == url:
        return
    forms = {url}
    with contextlib.suppress(httpx.InvalidURL):
        forms.add(str(httpx.URL(url)))
    for form in forms:
        _SECRET_URLS.setdefault(form, masked)
    _SECRET_ORDER[:] = sorted(_SECRET_URLS.items(), key=lambda item: len(item[0]), reverse=True)
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class JsonRpc(Protocol):
    """What the stream needs of a JSON-RPC endpoint: one ``RpcClient``, or an ``EndpointPool`` of several."""

    @property
    def masked_url(self) -> str: ...

    @property
    def ever_answered(self) -> bool: ...

    @property
    def requests_sent(self) -> int: ...

    @property
    def latency_s(self) -> float | None: ...

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any: ...

    async def batch(self, calls: Sequence[Call]) -> list[Any]: ...

    async def aclose(self) -> None: ...


class RpcClient:
    """Sends single and batched JSON-RPC calls to one URL.

    ``requests_sent`` counts HTTP requests, so tests and benchmarks can see
    what the node pays.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.masked_url = mask_url(url)
        _keep_secret(url)
        # A caller that chose its own timeout keeps it from the first call on.
        self._startup_timeout = STARTUP_TIMEOUT if timeout is DEFAULT_TIMEOUT else None
        self._http = httpx.AsyncClient(
            timeout=timeout,
            transport=transport if transport is not None else FAKE_TRANSPORTS.get(url),
            headers={"content-type": "application/json", "accept": "application/json"},
        )
        self._ids = itertools.count(1)
        self._batch_supported = True
        self.requests_sent = 0
        # Set after the first well-formed JSON-RPC answer: until then a
        # persistent failure more likely means a wrong URL than a bad moment.
        self.ever_answered = False
        # Seconds the last HTTP request that got a response took (for health()).
        self.latency_s: float | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One call; raises :class:`RpcResponseError` for a JSON-RPC error answer."""
        request_id = next(self._ids)
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
        answer = await self._post(body, method)
        result = self._unwrap(answer, request_id, method)
        if isinstance(result, RpcResponseError):
            raise result
        return result

    async def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Several calls in one HTTP request where the node allows it.

        Returns one entry per call, in order: the result, or the
        :class:`RpcResponseError` for that call. Transport-level failures raise.
        """
        if len(calls) == 1 or not self._batch_supported:
            out: list[Any] = []
            for method, params in calls:
                try:
                    out.append(await self.call(method, params))
                except RpcResponseError as exc:
                    out.append(exc)
            return out
        ids = [next(self._ids) for _ in calls]
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        label = batch_label(calls)
        answer = await self._post(body, label)
        if isinstance(answer, dict):
            # A single error object for a whole batch. A rate limit or a busy
            # node says nothing about batch support: let the caller retry.
            # Anything else means this node does not do batches: remember
            # that and send the calls one by one from now on.
            if answer.get("error") is not None:
                refusal = self._unwrap(answer, -1, label)
                if (
                    refusal.code != -32600
                    and classify(refusal) is Fault.TRANSIENT
                    and not _BATCH_REFUSAL.search(refusal.args[0] if refusal.args else "")
                ):
                    raise refusal
            log.info("node at %s rejected a JSON-RPC batch; sending calls singly", self.masked_url)
            self._batch_supported = False
            return await self.batch(calls)
        if not isinstance(answer, list):
            raise RpcProtocolError("batch answer is not a JSON array", url=self.masked_url, method=label)
        by_id = {item.get("id"): item for item in answer if isinstance(item, dict)}
        return [self._unwrap(by_id.get(i), i, m) for i, (m, _) in zip(ids, calls, strict=True)]

    async def _post(self, body: object, method: str) -> Any:
        self.requests_sent += 1
        # Until the endpoint has answered once, a silent one is more likely a
        # wrong URL than a slow node: it gets less time (see STARTUP_TIMEOUT).
        timeout = self._startup_timeout if not self.ever_answered else None
        clock = asyncio.get_running_loop().time  # the loop's clock: virtual in the simulator
        sent = clock()
        try:
            if timeout is None:
                response = await self._http.post(self.url, content=json.dumps(body))
            else:
                response = await self._http.post(self.url, content=json.dumps(body), timeout=timeout)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.masked_url, method) from exc
        self.latency_s = clock() - sent
        status = response.status_code
        if status == 429 or status >= 500:
            raise RpcHttpError(
                _status_line(response),
                status=status,
                retry_after=_retry_after(response),
                url=self.masked_url,
                method=method,
            )
        try:
            answer = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            if status != 200:
                raise RpcHttpError(
                    _status_line(response), status=status, url=self.masked_url, method=method
                ) from None
            kind = response.headers.get("content-type", "unknown content type")
            raise RpcProtocolError(
                f"answer is not JSON ({kind}, starts {response.text[:40]!r})",
                url=self.masked_url,
                method=method,
            ) from None
        if status != 200 and not _looks_like_jsonrpc(answer):
            raise RpcHttpError(_status_line(response), status=status, url=self.masked_url, method=method)
        return answer

    def _unwrap(self, answer: Any, request_id: int, method: str) -> Any:
        if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0":
            raise RpcProtocolError("answer is not a JSON-RPC 2.0 object", url=self.masked_url, method=method)
        error = answer.get("error")
        if error is not None:
            self.ever_answered = True
            if not isinstance(error, dict):
                raise RpcProtocolError(
                    f"malformed error object {error!r}", url=self.masked_url, method=method
                )
            code = error.get("code")
            return RpcResponseError(
                str(error.get("message", "")),
                code=code if isinstance(code, int) else 0,
                data=error.get("data"),
                url=self.masked_url,
                method=method,
            )
        if answer.get("id") != request_id or "result" not in answer:
            raise RpcProtocolError(
                f"answer id {answer.get('id')!r} does not match request {request_id}",
                url=self.masked_url,
                method=method,
            )
        self.ever_answered = True
        return answer["result"]


def batch_label(calls: Sequence[Call]) -> str:
    """What a batch is called in errors and log lines: brief, whatever its size.

    ``batch of 21 calls``, or ``eth_getBlockByNumber (batch of 20)`` when
    every call is the same method. Spelling out twenty method names made
    lines of 500 characters.
    """
    methods = {method for method, _ in calls}
    if len(methods) == 1:
        return f"{next(iter(methods))} (batch of {len(calls)})"
    return f"batch of {len(calls)} calls"


def _status_line(response: httpx.Response) -> str:
    """``HTTP 501 Not Implemented``: the phrase tells a person more than the number."""
    phrase = response.reason_phrase
    return f"HTTP {response.status_code} {phrase}" if phrase else f"HTTP {response.status_code}"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from, outermost first (httpx wraps httpcore wraps OSError)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _transport_error(exc: httpx.HTTPError, url: str, method: str) -> RpcTransportError:
    """The words a person reads for a transport failure, never an exception repr."""
    causes = _causes(exc)
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if isinstance(exc, httpx.TimeoutException):
        what = {
            httpx.ConnectTimeout: "timed out connecting",
            httpx.PoolTimeout: "timed out waiting for a free connection",
            httpx.WriteTimeout: "timed out sending the request",
        }.get(type(exc), "timed out waiting for the answer")
        return RpcTransportError(what, url=url, method=method, maybe_processed=sent, timed_out=True)
    if isinstance(exc, httpx.ConnectError):
        if any(isinstance(c, ConnectionRefusedError) for c in causes):
            what = "connection refused"
        elif any(isinstance(c, socket.gaierror) for c in causes):
            what = "name not resolved"
        else:
            what = f"cannot connect: {_os_reason(causes)}"
        return RpcTransportError(what, url=url, method=method, maybe_processed=False, unreachable=True)
    if isinstance(exc, httpx.RemoteProtocolError):
        what = "the connection closed without a complete answer"
    elif any(isinstance(c, ConnectionResetError) for c in causes):
        what = "connection reset"
    else:
        what = f"connection failed mid-request: {_os_reason(causes)}"
    return RpcTransportError(what, url=url, method=method)


def _os_reason(causes: list[BaseException]) -> str:
    for cause in reversed(causes):  # the innermost says most
        if isinstance(cause, OSError) and cause.errno:
            # The errno's words, not the strerror: asyncio puts the address
            # there ("Connect call failed ('127.0.0.1', 8545)"), said already.
            return os.strerror(cause.errno).lower()
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
    inner = causes[-1]
    return str(inner).lower() or type(inner).__name__


def _looks_like_jsonrpc(answer: Any) -> bool:
    items = answer if isinstance(answer, list) else [answer]
    return bool(items) and all(isinstance(i, dict) and i.get("jsonrpc") == "2.0" for i in items)
