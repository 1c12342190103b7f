"""The JSON-RPC front of ``ogpu.events.testing.FakeNode``, with the ways real nodes misbehave.

:class:`FakeRpc` answers one ``httpx.Request`` at a time (a call or a batch)
from the chain it inherits from ``_fakechain``: the methods the stream uses
(``eth_chainId``, ``eth_blockNumber``, ``eth_getBlockByNumber``,
``eth_getBlockByHash``, ``eth_getLogs``, ``eth_newFilter``,
``eth_getFilterChanges``, ``eth_uninstallFilter``) and nothing else. How the
request reaches it (an httpx transport, respx) is its owner's business.

Knobs (plain attributes, change them at any time):

* ``filter_history``: anvil-like, a new filter whose ``fromBlock`` lies in
  the past returns those logs on its first poll; geth-like (the default)
  returns only logs mined after the filter was created.
* ``filters_supported``: False answers every filter method with
  "method not found" (-32601).
* ``batch_supported``: False answers a batch with one error object.
* ``reverse_answers``: answer batches, filter changes and ``eth_getLogs``
  in reverse order, as nothing in JSON-RPC promises an order.
* ``max_range`` / ``range_error`` / ``range_code``: refuse ``eth_getLogs``
  over more blocks; ``range_error`` is formatted with ``limit``, and with
  ``first``/``last`` (the range the provider would accept).
* ``max_results`` / ``results_error`` / ``results_code``: refuse an
  ``eth_getLogs`` answer with more logs; ``first``/``last`` name the
  largest range from the same start that fits.
* ``filter_lost_code`` / ``filter_lost_message``: the answer for a filter
  id the node does not know; ganache answers -32700.
* ``null_for_unknown_filter``: hardhat-like, ``eth_getFilterChanges`` on
  a filter the node does not know answers ``{"result": null}``.
* ``get_logs_overreach``: ``eth_getLogs`` also returns the logs above
  ``toBlock``, up to the head (a proxy or node that ignores the bound).
* ``http_override``: an answer for every HTTP request until set back to None.

Head answers (``eth_blockNumber`` and ``eth_getBlockByNumber("latest")``)
obey :meth:`FakeRpc.lag_head` and :meth:`FakeRpc.spike_head`. Every HTTP
request and every JSON-RPC call is recorded (``requests``, ``calls``,
``errors``), so a test can assert what the node paid.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from ogpu._errors import InvalidArgumentError
from ogpu.events._codec.abi import RawLog
from ogpu.events._fake.chain import Block, FakeChain, Filter, address_matches, fake_hash

__all__ = ["FakeRpc", "HttpFault", "RpcFault", "http_response"]

# What a scripted HTTP fault may be: the response to give, an exception to
# raise (as a transport would: httpx.ConnectError, httpx.ReadTimeout, ...),
# or a function of the request that does either.
HttpFault = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def http_response(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """An HTTP answer with ``status`` and, if given, a JSON ``body``."""
    if body is None:
        return httpx.Response(status, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


class RpcFault(Exception):
    """Raised inside a handler to answer with a JSON-RPC error object."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FakeRpc(FakeChain):
    """A chain of blocks with logs, and a JSON-RPC front for it (see the module docstring)."""

    def __init__(self, *, url: str, chain_id: int, nexus: str, start_block: int = 0) -> None:
        super().__init__(nexus=nexus, start_block=start_block)
        self.url = url
        self.chain_id = chain_id
        self.filter_history = False
        self.filters_supported = True
        self.batch_supported = True
        self.reverse_answers = False
        self.max_range: int | None = None
        self.range_error = "block range too large"
        self.range_code = -32005
        self.max_results: int | None = None
        self.results_error = "query returned more than {limit} results"
        self.results_code = -32005
        self.filter_lost_code = -32000
        self.filter_lost_message = "filter not found"
        self.null_for_unknown_filter = False
        self.get_logs_overreach = False
        self.http_override: HttpFault | None = None

        # What the node was asked: one entry per HTTP request (its methods),
        # and one per JSON-RPC call.
        self.requests: list[list[str]] = []
        self.calls: list[tuple[str, list[Any]]] = []
        self.errors: list[tuple[str, int, str]] = []
        # Scripted faults: HTTP-level answers for the next requests, JSON-RPC
        # errors for the next calls of a method, offsets for the next heads.
        self._http_faults: deque[HttpFault] = deque()
        self._rpc_faults: dict[str, deque[RpcFault]] = {}
        self._head_lag: deque[int] = deque()
        self._head_spike: int | None = None
        self._http_by_method: dict[str, deque[tuple[int, bool]]] = {}
        self._injected: list[RawLog] = []
        self.head_answers = 0
        # The head the backend answering the current HTTP request claimed,
        # and the headers it made up for blocks not mined yet.
        self._view: int | None = None
        self._phantoms: dict[int, dict[str, Any]] = {}
        self._phantom_count = 0

    def restart(self, chain_id: int | None = None, *, same_genesis: bool = False) -> None:
        """Start a new chain from block 0 (``FakeChain.restart``); ``chain_id``, if given, is the new one."""
        self._phantoms.clear()
        if chain_id is not None:
            self.chain_id = chain_id
        super().restart(chain_id, same_genesis=same_genesis)

    # --- scripted faults ---

    def fail_next(self, *answers: HttpFault, status: int | None = None, times: int = 1) -> None:
        """Fail the next ``times`` HTTP requests: with HTTP ``status`` (default 503), or with ``answers``.

        Each of ``answers`` is an ``httpx.Response`` to give, an exception to
        raise as a transport would (``httpx.ConnectError("refused")``), or a
        function of the ``httpx.Request`` returning a response; they are used
        in turn, ``times`` over. The node never sees a request failed this way.
        """
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise InvalidArgumentError(f"fail_next() times must be an int >= 1, got {times!r}")
        if answers and status is not None:
            raise InvalidArgumentError("fail_next() takes answers or a status, not both")
        if not answers:
            code = 503 if status is None else status
            if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 599:
                raise InvalidArgumentError(f"fail_next() status must be an HTTP status code, got {status!r}")
            # A fresh response per request: a client takes ownership of the one it gets.
            answers = (lambda _request: http_response(code),)
        for _ in range(times):
            self._http_faults.extend(answers)

    def lose_next_answer(self) -> None:
        """Process the next request as usual, then lose the answer on the way back (a read timeout).

        Before the stream's first answer, this is a node that never answers,
        and the watcher raises ``RpcTransportError`` as it would in production.
        """

        def lost(request: httpx.Request) -> httpx.Response:
            self._serve(json.loads(request.content))
            raise httpx.ReadTimeout("the answer never arrived", request=request)

        self._http_faults.append(lost)

    def fail_rpc(self, method: str, code: int, message: str, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with a JSON-RPC error."""
        self._rpc_faults.setdefault(method, deque()).extend(RpcFault(code, message) for _ in range(times))

    def lag_head(self, offsets: Iterable[int]) -> None:
        """Report the head this many blocks lower in the next head answers.

        A negative offset is a backend ahead of this one: it answers a made-up
        header whose hash the block later mined at that height will not have.
        Blocks above a lagged head are unknown (null) to the rest of the same request.
        """
        self._head_lag.extend(offsets)

    def spike_head(self, offset: int) -> None:
        """The next head answer only: a made-up header ``offset`` blocks above the head."""
        self._head_spike = offset

    def inject_filter_log(self, raw: RawLog) -> None:
        """The next ``eth_getFilterChanges`` answer of a known filter also carries ``raw``."""
        self._injected.append(raw)

    def fail_http_for(self, method: str, status: int, times: int = 1, *, processed: bool = False) -> None:
        """Answer HTTP ``status`` to the next ``times`` requests that contain a call of ``method``.

        ``processed``: the node acts on the request before the error is
        returned (a proxy failing on the way back); by default it never sees it.
        """
        self._http_by_method.setdefault(method, deque()).extend((status, processed) for _ in range(times))

    def calm(self) -> None:
        """Drop every scripted fault not yet fired (HTTP, JSON-RPC, head, injected logs)."""
        self._http_faults.clear()
        self._http_by_method.clear()
        self._rpc_faults.clear()
        self._head_lag.clear()
        self._head_spike = None
        self._injected.clear()

    # --- what the node saw ---

    def count(self, method: str) -> int:
        """How many calls of ``method`` the node received (inside batches too)."""
        return sum(1 for name, _ in self.calls if name == method)

    # --- the HTTP side ---

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Answer one HTTP request (its body already read)."""
        fault = self._http_faults.popleft() if self._http_faults else self.http_override
        try:
            body = json.loads(request.content)
        except ValueError:
            body = None
        items = body if isinstance(body, list) else [body]
        methods = [str(i.get("method")) for i in items if isinstance(i, dict)]
        self.requests.append(methods)
        if fault is None:
            for method in methods:
                queued = self._http_by_method.get(method)
                if queued:
                    status, processed = queued.popleft()
                    if processed:
                        self._serve(body)
                    return http_response(status)
        if fault is not None:
            if isinstance(fault, Exception):
                raise fault
            if isinstance(fault, httpx.Response):
                return fault
            return fault(request)
        return self._serve(body)

    def _serve(self, body: Any) -> httpx.Response:
        items = body if isinstance(body, list) else [body]
        # Each request may reach another backend: what one claimed about the
        # head holds for the rest of its request only.
        self._view = None
        if isinstance(body, list):
            if not self.batch_supported:
                self.calls.extend((str(i.get("method")), i.get("params", [])) for i in items)
                refusal = {"code": -32600, "message": "batch requests are not supported"}
                return httpx.Response(200, json={"jsonrpc": "2.0", "id": None, "error": refusal})
            answers = [self._answer(item) for item in body]
            if self.reverse_answers:
                answers.reverse()
            return httpx.Response(200, json=answers)
        return httpx.Response(200, json=self._answer(body))

    def _answer(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict) or not isinstance(item.get("method"), str):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}}
        method: str = item["method"]
        params: list[Any] = item.get("params") or []
        self.calls.append((method, params))
        envelope: dict[str, Any] = {"jsonrpc": "2.0", "id": item.get("id")}
        try:
            queued = self._rpc_faults.get(method)
            if queued:
                raise queued.popleft()
            handler = self._handlers().get(method)
            if handler is None:
                raise RpcFault(-32601, f"the method {method} does not exist/is not available")
            envelope["result"] = handler(params)
        except RpcFault as fault:
            self.errors.append((method, fault.code, fault.message))
            envelope["error"] = {"code": fault.code, "message": fault.message}
        return envelope

    def _handlers(self) -> dict[str, Callable[[list[Any]], Any]]:
        handlers: dict[str, Callable[[list[Any]], Any]] = {
            "eth_chainId": lambda _: hex(self.chain_id),
            "eth_blockNumber": self._block_number,
            "eth_getLogs": self._get_logs,
            "eth_getBlockByNumber": self._get_block,
            "eth_getBlockByHash": self._get_block_by_hash,
        }
        if self.filters_supported:
            handlers["eth_newFilter"] = self._new_filter
            handlers["eth_getFilterChanges"] = self._filter_changes
            handlers["eth_uninstallFilter"] = self._uninstall_filter
        return handlers

    # --- methods ---

    def _block_number(self, _: list[Any]) -> str:
        return hex(self._head_answer())

    def _head_answer(self) -> int:
        """The block number this head answer claims, after the lag and spike knobs."""
        self.head_answers += 1
        if self._head_spike is not None:
            offset, self._head_spike = -self._head_spike, None
        else:
            offset = self._head_lag.popleft() if self._head_lag else 0
        claimed = max(0, self.head - offset)
        self._view = claimed
        if claimed > self.head and claimed not in self._phantoms:
            # A backend ahead: a header nobody will mine with this hash.
            self._phantom_count += 1
            self._phantoms[claimed] = {
                "number": hex(claimed),
                "hash": fake_hash("phantom", claimed, self._phantom_count),
                "parentHash": fake_hash("phantom-parent", claimed, self._phantom_count),
                "timestamp": hex(1_700_000_000 + claimed),
                "transactions": [],
            }
        return claimed

    def _block_tag(self, value: object, default: int) -> int:
        if value is None:
            return default
        if value in ("latest", "safe", "finalized", "pending"):
            return self.head
        if value == "earliest":
            return 0
        if not isinstance(value, str) or not value.startswith("0x"):
            raise RpcFault(-32602, f"invalid block number {value!r}")
        return int(value, 16)

    def _new_filter(self, params: list[Any]) -> str:
        query = params[0] if params else {}
        self._filter_ids += 1
        filter_id = hex(0xF000 + self._filter_ids)
        flt = Filter(filter_id, _lower(query.get("address")))
        if self.filter_history and "fromBlock" in query:
            first = self._block_tag(query["fromBlock"], self.head)
            flt.pending = [
                raw
                for block in self.blocks[first : self.head + 1]
                for raw in block.logs
                if address_matches(flt.address, raw)
            ]
        self.filters[filter_id] = flt
        self.created_filters.append(filter_id)
        return filter_id

    def _filter_changes(self, params: list[Any]) -> list[RawLog] | None:
        if self.null_for_unknown_filter and (params[0] if params else "") not in self.filters:
            return None
        flt = self.filters.get(params[0] if params else "")
        if flt is None:
            raise RpcFault(self.filter_lost_code, self.filter_lost_message)
        # What a filter returns is gone from it: the node will not say it again.
        changes, flt.pending = flt.pending + self._injected, []
        self._injected = []
        return changes[::-1] if self.reverse_answers else changes

    def _uninstall_filter(self, params: list[Any]) -> bool:
        return self.filters.pop(params[0] if params else "", None) is not None

    def _get_logs(self, params: list[Any]) -> list[RawLog]:
        query = params[0] if params else {}
        if "blockHash" in query:
            # EIP-234: one block's logs, by hash.
            block = self.block_by_hash(str(query["blockHash"]))
            if block is None:
                raise RpcFault(-32000, "unknown block")
            return [raw for raw in block.logs if address_matches(_lower(query.get("address")), raw)]
        first = self._block_tag(query.get("fromBlock"), self.head)
        last = min(self._block_tag(query.get("toBlock"), self.head), self.head)
        if first > last:
            return []
        if self.max_range is not None and last - first + 1 > self.max_range:
            allowed = first + self.max_range - 1
            message = self.range_error.format(limit=self.max_range, first=hex(first), last=hex(allowed))
            raise RpcFault(self.range_code, message)
        if self.get_logs_overreach:
            last = self.head  # the range was checked as asked; the answer ignores its end
        wanted = _lower(query.get("address"))
        topics = query.get("topics") or []
        found = [
            raw
            for block in self.blocks[first : last + 1]
            for raw in block.logs
            if address_matches(wanted, raw) and _topics_match(topics, raw["topics"])
        ]
        if self.max_results is not None and len(found) > self.max_results:
            # The largest range from the same start whose logs still fit.
            fits = max(first, int(found[self.max_results]["blockNumber"], 16) - 1)
            message = self.results_error.format(limit=self.max_results, first=hex(first), last=hex(fits))
            raise RpcFault(self.results_code, message)
        return found[::-1] if self.reverse_answers else found

    def _get_block(self, params: list[Any]) -> dict[str, Any] | None:
        tag = params[0] if params else None
        if tag in ("latest", "pending"):
            number = self._head_answer()
        else:
            number = self._block_tag(tag, self.head)
            if self._view is not None and self._view < number <= self.head:
                return None  # above what this request's (lagging) backend has
        if number > self.head:
            return self._phantoms.get(number) if self._view is not None and number <= self._view else None
        return _header(self.blocks[number])

    def _get_block_by_hash(self, params: list[Any]) -> dict[str, Any] | None:
        block = self.block_by_hash(str(params[0] if params else ""))
        return None if block is None else _header(block)


def _header(block: Block) -> dict[str, Any]:
    return {
        "number": hex(block.number),
        "hash": block.hash,
        "parentHash": block.parent_hash,
        "timestamp": hex(1_700_000_000 + block.number),
        "transactions": [],
    }


def _lower(value: object) -> str | None:
    return value.lower() if isinstance(value, str) else None


def _topics_match(wanted: list[Any], topics: list[str]) -> bool:
    for position, choice in enumerate(wanted):
        if choice is None:
            continue
        if position >= len(topics):
            return False
        options = choice if isinstance(choice, list) else [choice]
        if topics[position].lower() not in {str(o).lower() for o in options}:
            return False
    return True
