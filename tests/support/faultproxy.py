"""A fault-injecting JSON-RPC reverse proxy to put in front of a real node.

It speaks just enough HTTP/1.1 for a JSON-RPC client (``POST`` with a
``Content-Length`` body, keep-alive) and forwards single and batched calls to
the node. Rules switched on while it runs make it misbehave the ways real
endpoints do: connections dropped before or after the node acted, answers
that come too late, HTTP 5xx and 429, garbled bodies, filters forgotten or
not offered at all, ``eth_getLogs`` caps, and a head that lags behind.

Faults that hit the whole HTTP request (drops, delays, statuses, garbling)
fire when any call in it matches; faults on a single call (filters, log caps,
the head) touch only the matching calls of a batch and let the rest through.

Run it in the test's own event loop::

    async with FaultProxy(anvil.url) as proxy:
        proxy.add(Rule(Fault.DROP_AFTER, methods=frozenset({"eth_getFilterChanges"}), every=3))
        ChainConfig.set_rpc(proxy.url)

Several proxies in front of one node are several endpoints of one chain, each
with faults of its own that a test switches at runtime (issue 18's failover):
:meth:`FaultProxy.kill` refuses connections until :meth:`FaultProxy.revive`;
``hang = True`` takes requests and never answers; ``lag = k`` makes it a node
``k`` blocks behind (heads, headers, ``eth_getLogs`` and filter changes as of
``k`` blocks ago); ``Fault.RATE_LIMIT`` and ``Fault.UNKNOWN_FILTER`` (a poll
load-balanced to a backend that never saw the filter) are rules. ``requests``,
``calls`` and ``installed`` count what each endpoint was asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["FILTER_METHODS", "Fault", "FaultProxy", "Rule"]

FILTER_METHODS = frozenset(
    {
        "eth_newFilter",
        "eth_newBlockFilter",
        "eth_newPendingTransactionFilter",
        "eth_getFilterChanges",
        "eth_getFilterLogs",
        "eth_uninstallFilter",
    }
)

_REASONS = {
    200: "OK",
    400: "Bad Request",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class Fault(enum.Enum):
    # whole HTTP request
    DROP_BEFORE = "drop the connection before forwarding"
    DROP_AFTER = "forward, then drop the connection"
    DELAY = "forward, then answer only after the client gave up"
    HTTP_ERROR = "answer an HTTP error status"
    RATE_LIMIT = "answer HTTP 429 with Retry-After"
    GARBLE = "forward, then answer a truncated body"
    # single calls
    FILTER_NOT_FOUND = "forget the filter (really uninstall it) and say so"
    NO_FILTERS = "reject filter methods as unknown"
    CAP_LOGS = "refuse eth_getLogs over too many blocks or results"
    LAG_HEAD = "report the head (eth_blockNumber, the latest block) behind the real one"
    RPC_ERROR = "answer a JSON-RPC error instead of forwarding"
    NULL_FILTER = "forget the filter (really uninstall it) and answer null, as hardhat does"
    HEAD_SPIKE = "report the head (eth_blockNumber, the latest block) far ahead of the real one"
    FOREIGN_LOG = "add another contract's copy of a log to an eth_getFilterChanges answer"
    OVERREACH = "forward eth_getLogs with toBlock 'latest': logs beyond the asked range"
    UNKNOWN_FILTER = "answer a filter poll as a backend that never saw the filter (the node keeps it)"


_PER_CALL = frozenset(
    {
        Fault.FILTER_NOT_FOUND,
        Fault.NO_FILTERS,
        Fault.CAP_LOGS,
        Fault.LAG_HEAD,
        Fault.RPC_ERROR,
        Fault.NULL_FILTER,
        Fault.HEAD_SPIKE,
        Fault.FOREIGN_LOG,
        Fault.OVERREACH,
        Fault.UNKNOWN_FILTER,
    }
)
# Where a FOREIGN_LOG comes from: no contract the watchers follow.
FOREIGN_ADDRESS = "0x" + "5a" * 20


@dataclasses.dataclass
class Rule:
    """When a fault fires and how it looks.

    Matching requests (or calls, for single-call faults) are counted; after
    the first ``skip`` of them, every ``every``-th one fires, each with
    ``probability``, until it has fired ``times`` times (None: no limit).
    ``CAP_LOGS`` counts only the calls it actually refuses.
    """

    fault: Fault
    methods: frozenset[str] = frozenset()  # empty: every method
    every: int = 1
    skip: int = 0
    times: int | None = None
    probability: float = 1.0
    # HTTP_ERROR: the status, and whether the node saw the request first
    status: int = 502
    forward: bool = True
    # RATE_LIMIT
    retry_after: str = "1"
    # DELAY: seconds to hold the answer (longer than the client's timeout)
    delay: float = 1.0
    # FILTER_NOT_FOUND: error codes used in turn (nodes disagree on the code)
    codes: tuple[int, ...] = (-32000,)
    # CAP_LOGS: the limits, and how the refusal reads: "plain" names no range,
    # "size" names a block count, "range" names a block range to retry with;
    # UNKNOWN_FILTER: "error" answers "filter not found", "empty" answers [] as erigon does
    max_blocks: int | None = None
    max_results: int | None = None
    style: str = "plain"
    # LAG_HEAD: how far behind the reported head is; HEAD_SPIKE: how far ahead (as a negative lag)
    lag: int = 3
    # RPC_ERROR: the error object's code and message
    code: int = -32005
    message: str = "rate limit exceeded"
    seen: int = 0
    fired: int = 0

    def matches(self, method: object) -> bool:
        return not self.methods or method in self.methods

    def fires(self, rng: random.Random) -> bool:
        """Count one matching request or call; True if the fault applies to it."""
        self.seen += 1
        if self.times is not None and self.fired >= self.times:
            return False
        n = self.seen - self.skip
        if n <= 0 or n % self.every:
            return False
        if self.probability < 1.0 and rng.random() >= self.probability:
            return False
        self.fired += 1
        return True


class _Drop(Exception):
    """Raised inside request handling to cut the connection without an answer."""


class _Hang(Exception):
    """Raised inside request handling to hold the connection, unanswered, until the client leaves."""


class FaultProxy:
    """HTTP/1.1 JSON-RPC proxy on ``127.0.0.1:<free port>`` in the running event loop."""

    def __init__(self, upstream: str, *, seed: int | None = 1) -> None:
        self.upstream = upstream
        self.rules: list[Rule] = []
        self.requests = 0
        # JSON-RPC calls by method (each call of a batch counts).
        self.calls: Counter[str] = Counter()
        # Filters the node created through the proxy and nobody uninstalled yet.
        self.filters: set[str] = set()
        # Every filter the node created through the proxy, in order.
        self.installed: list[str] = []
        # Take requests and never answer them (no answer at all, not even a closed connection).
        self.hang = False
        # Be a node this many blocks behind the real one (0: current).
        self.lag = 0
        # Called with the methods of each JSON-RPC request as it arrives (a benchmark's clock).
        self.on_request: Callable[[list[str]], object] | None = None
        # Filter changes a lagging node has not reached yet, by filter id.
        self._held: dict[str, list[dict[str, Any]]] = {}
        self._alive = False
        # Filters a NULL_FILTER forgot: like hardhat, every later poll of them answers null.
        self._nulled: set[str] = set()
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._http: httpx.AsyncClient | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self.port = 0
        self._closing = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def fired(self) -> int:
        return sum(rule.fired for rule in self.rules)

    @property
    def alive(self) -> bool:
        """Whether the proxy accepts connections (not killed)."""
        return self._alive

    def add(self, *rules: Rule) -> None:
        self.rules.extend(rules)

    def clear(self) -> None:
        self.rules = []

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        # anvil refuses a body that is not declared as JSON.
        self._http = httpx.AsyncClient(timeout=30.0, headers={"content-type": "application/json"})
        await self._listen()

    async def _listen(self) -> None:
        self._closing = False
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._alive = True

    async def kill(self) -> None:
        """Die as a node process does: open connections cut, new ones refused, until :meth:`revive`."""
        await self._stop_listening()

    async def revive(self) -> None:
        """Accept connections again, on the same port (the node behind kept running)."""
        if not self._alive:
            await self._listen()

    async def aclose(self) -> None:
        await self._stop_listening()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        self._closing = True
        self._alive = False
        if server is not None:
            server.close()
        # Handlers may be parked in a delay or waiting on an idle keep-alive
        # connection; cut them off so nothing outlives the proxy.
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if server is not None:
            await server.wait_closed()

    # --- HTTP ---

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                body = await self._read_request(reader)
                if body is None:
                    break
                self.requests += 1
                try:
                    status, headers, answer = await self._answer(body)
                except _Drop:
                    break
                except _Hang:
                    # Read on (nothing should come) until the client gives up and closes.
                    while await reader.read(65536):
                        pass
                    break
                except httpx.HTTPError:
                    # The node itself did not answer: say so as a gateway would.
                    status, headers, answer = 502, {"Content-Type": "text/html"}, _html(502)
                head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
                head += [f"{k}: {v}" for k, v in headers.items()]
                head += [f"Content-Length: {len(answer)}", "Connection: keep-alive", "", ""]
                writer.write("\r\n".join(head).encode() + answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the client went away or spoke something else; nothing to answer
        except asyncio.CancelledError:
            # asyncio's stream server reads the result of this task and
            # reports a cancelled one as an error; the proxy cancels its own
            # handlers only when closing, so ending quietly is right here.
            if not self._closing:
                raise
        finally:
            self._handlers.discard(task)
            writer.transport.abort()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
        line = await reader.readline()
        if not line.strip():
            return None
        length = 0
        while True:
            header = await reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        return await reader.readexactly(length)

    # --- JSON-RPC ---

    async def _answer(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            request = json.loads(body)
        except ValueError:
            return await self._forward_raw(body)
        batch = isinstance(request, list)
        calls: list[dict[str, Any]] = [c for c in (request if batch else [request]) if isinstance(c, dict)]
        if not calls:
            return await self._forward_raw(body)  # not JSON-RPC: let the node say what it thinks
        methods = [c.get("method") for c in calls]
        self.calls.update(str(m) for m in methods)
        if self.on_request is not None:
            self.on_request([str(m) for m in methods])
        if self.hang:
            raise _Hang

        whole = self._whole_request_fault(methods)
        kind = whole.fault if whole is not None else None
        if kind is Fault.DROP_BEFORE:
            raise _Drop
        if kind is Fault.RATE_LIMIT:
            assert whole is not None
            return 429, {"Retry-After": whole.retry_after, "Content-Type": "text/plain"}, b"rate limited"
        if kind is Fault.HTTP_ERROR and whole is not None and not whole.forward:
            return whole.status, {"Content-Type": "text/html"}, _html(whole.status)

        answers = await self._forward_calls(calls)
        payload = json.dumps(answers if batch else answers[0]).encode()

        if kind is Fault.HTTP_ERROR:
            assert whole is not None
            return whole.status, {"Content-Type": "text/html"}, _html(whole.status)
        if kind is Fault.DROP_AFTER:
            raise _Drop
        if kind is Fault.DELAY:
            assert whole is not None
            await asyncio.sleep(whole.delay)  # the client has given up by now
            raise _Drop
        if kind is Fault.GARBLE:
            return 200, {"Content-Type": "application/json"}, payload[: max(1, len(payload) // 2)]
        return 200, {"Content-Type": "application/json"}, payload

    def _whole_request_fault(self, methods: list[Any]) -> Rule | None:
        chosen: Rule | None = None
        for rule in self.rules:
            if rule.fault in _PER_CALL or not any(rule.matches(m) for m in methods):
                continue
            # Every matching rule counts the request, so "every k-th" stays
            # true to its word even when another rule fired first.
            if rule.fires(self._rng) and chosen is None:
                chosen = rule
        return chosen

    async def _forward_calls(self, calls: list[dict[str, Any]]) -> list[Any]:
        """Answers to ``calls`` in order: single-call faults applied, the rest from the node."""
        answers: list[Any] = [None] * len(calls)
        sent: list[tuple[int, dict[str, Any]]] = []
        # A lagging node's head, read once for the whole request.
        lagged = await self._lagged_head() if self.lag > 0 or self._held else None
        for i, call in enumerate(calls):
            call = calls[i] = self._rewrite(call)
            replaced = self._behind(call, lagged) if lagged is not None else None
            if replaced is None:
                replaced = self._before_node(call)
            if isinstance(replaced, _Synthetic):
                answers[i] = replaced.answer
                if replaced.send is not None:
                    sent.append((-1, replaced.send))
                continue
            sent.append((i, call))
        if sent:
            upstream = await self._post([c for _, c in sent])
            by_id = {a.get("id"): a for a in upstream if isinstance(a, dict)}
            for i, call in sent:
                if i >= 0:
                    answers[i] = by_id.get(call.get("id")) or _error(call, -32603, "no answer from upstream")
        for i, call in enumerate(calls):
            answers[i] = await self._after_node(call, answers[i])
            if lagged is not None:
                answers[i] = await self._behind_answer(call, answers[i], lagged)
        return answers

    # --- a node k blocks behind ---

    async def _lagged_head(self) -> int:
        return max(0, await self._block("latest") - self.lag)

    def _behind(self, call: dict[str, Any], lagged: int) -> _Synthetic | None:
        """What a node at ``lagged`` answers without asking the real one (else None: forward)."""
        method = call.get("method")
        params = call.get("params") or []
        if method == "eth_blockNumber":
            return _Synthetic({"jsonrpc": "2.0", "id": call.get("id"), "result": hex(lagged)})
        if method == "eth_getBlockByNumber" and params:
            tag = params[0]
            if tag in ("latest", "pending", "safe", "finalized"):
                call["params"] = [hex(lagged), *params[1:]]
            elif isinstance(tag, str) and tag.startswith("0x") and int(tag, 16) > lagged:
                return _Synthetic({"jsonrpc": "2.0", "id": call.get("id"), "result": None})
        ranged = method == "eth_getLogs" and params and isinstance(params[0], dict)
        if ranged and "blockHash" not in params[0]:
            query = dict(params[0])
            first = _number(query.get("fromBlock", "latest"), lagged)
            last = min(_number(query.get("toBlock", "latest"), lagged), lagged)
            if first > last:
                return _Synthetic({"jsonrpc": "2.0", "id": call.get("id"), "result": []})
            query["fromBlock"], query["toBlock"] = hex(first), hex(last)
            call["params"] = [query, *params[1:]]
        return None

    async def _behind_answer(self, call: dict[str, Any], answer: Any, lagged: int) -> Any:
        """``answer`` cut to what a node at ``lagged`` has: newer blocks unknown, newer changes held back."""
        if not isinstance(answer, dict) or not isinstance(answer.get("result"), dict | list):
            return answer
        method = call.get("method")
        result = answer["result"]
        if method == "eth_getBlockByHash" and isinstance(result, dict):
            return answer if _number(result.get("number"), 0) <= lagged else {**answer, "result": None}
        if method == "eth_getLogs" and isinstance(result, list):
            # Logs of blocks this node has not reached (a blockHash query) are not there.
            return {**answer, "result": [raw for raw in result if _log_block(raw) <= lagged]}
        if method == "eth_getFilterChanges" and isinstance(result, list):
            key = str((call.get("params") or [None])[0])
            pending = self._held.pop(key, []) + result
            ready = [raw for raw in pending if not isinstance(raw, dict) or _log_block(raw) <= lagged]
            later = [raw for raw in pending if isinstance(raw, dict) and _log_block(raw) > lagged]
            if later:
                self._held[key] = later
            return {**answer, "result": ready}
        return answer

    def _rewrite(self, call: dict[str, Any]) -> dict[str, Any]:
        """``call`` as forwarded: OVERREACH widens eth_getLogs to the head (the answer keeps its id)."""
        params = call.get("params") or []
        if call.get("method") != "eth_getLogs" or not params or not isinstance(params[0], dict):
            return call
        if "blockHash" in params[0]:
            return call
        for rule in self.rules:
            if rule.fault is Fault.OVERREACH and rule.matches("eth_getLogs") and rule.fires(self._rng):
                return {**call, "params": [{**params[0], "toBlock": "latest"}, *params[1:]]}
        return call

    def _before_node(self, call: dict[str, Any]) -> _Synthetic | None:
        method = call.get("method")
        if method == "eth_getFilterChanges" and str((call.get("params") or [None])[0]) in self._nulled:
            return _Synthetic({"jsonrpc": "2.0", "id": call.get("id"), "result": None})
        for rule in self.rules:
            if not rule.matches(method):
                continue
            unknown = rule.fault is Fault.UNKNOWN_FILTER and method == "eth_getFilterChanges"
            if unknown and rule.fires(self._rng):
                # Another backend behind the same URL: it never saw the filter, which
                # stays installed, changes and all, on the node that created it.
                if rule.style == "empty":
                    return _Synthetic({"jsonrpc": "2.0", "id": call.get("id"), "result": []})
                return _Synthetic(_error(call, rule.codes[0], "filter not found"))
            if rule.fault is Fault.RPC_ERROR and rule.fires(self._rng):
                return _Synthetic(_error(call, rule.code, rule.message))
            if rule.fault is Fault.NO_FILTERS and method in FILTER_METHODS and rule.fires(self._rng):
                message = f"the method {method} does not exist/is not available"
                return _Synthetic(_error(call, -32601, message))
            if (
                rule.fault in (Fault.FILTER_NOT_FOUND, Fault.NULL_FILTER)
                and method in ("eth_getFilterChanges", "eth_getFilterLogs")
                and rule.fires(self._rng)
            ):
                code = rule.codes[(rule.fired - 1) % len(rule.codes)]
                params = call.get("params") or [None]
                lost = (
                    {"jsonrpc": "2.0", "id": call.get("id"), "result": None}
                    if rule.fault is Fault.NULL_FILTER
                    else _error(call, code, "filter not found")
                )
                # Drop the filter on the node too: whatever it held is gone,
                # as on a backend that restarted or expired it.
                self.filters.discard(str(params[0]))
                if rule.fault is Fault.NULL_FILTER:
                    self._nulled.add(str(params[0]))
                uninstall = {
                    "jsonrpc": "2.0",
                    "id": f"faultproxy-{id(call)}",
                    "method": "eth_uninstallFilter",
                    "params": [params[0]],
                }
                return _Synthetic(lost, send=uninstall)
        return None

    async def _after_node(self, call: dict[str, Any], answer: Any) -> Any:
        method = call.get("method")
        if not isinstance(answer, dict) or "result" not in answer:
            return answer
        if method == "eth_newFilter" and isinstance(answer["result"], str):
            self.filters.add(answer["result"])
            self.installed.append(answer["result"])
        if method == "eth_uninstallFilter" and answer["result"] is True:
            self.filters.discard(str((call.get("params") or [None])[0]))
        for rule in self.rules:
            if not rule.matches(method):
                continue
            if rule.fault in (Fault.LAG_HEAD, Fault.HEAD_SPIKE) and _is_head(call) and rule.fires(self._rng):
                return await self._moved_head(rule, call, answer)
            if (
                rule.fault is Fault.FOREIGN_LOG
                and method == "eth_getFilterChanges"
                and isinstance(answer["result"], list)
                and answer["result"]
                and rule.fires(self._rng)
            ):
                # Another contract emitting an event with a Nexus topic in the same block.
                model = answer["result"][-1]
                copy = {
                    **model,
                    "address": FOREIGN_ADDRESS,
                    "logIndex": hex(int(model["logIndex"], 16) + 1000),
                    "transactionHash": "0x" + self._rng.randbytes(32).hex(),
                }
                return {**answer, "result": [*answer["result"], copy]}
            if rule.fault is Fault.CAP_LOGS and method == "eth_getLogs":
                refusal = await self._log_cap(rule, call, answer["result"])
                if refusal is not None and rule.fires(self._rng):
                    return _error(call, *refusal)
        return answer

    async def _moved_head(self, rule: Rule, call: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        """The head answer of a backend behind (LAG_HEAD) or far ahead (HEAD_SPIKE) of the node."""
        result = answer["result"]
        head = int(result if isinstance(result, str) else result["number"], 16)
        moved = head + rule.lag if rule.fault is Fault.HEAD_SPIKE else max(0, head - rule.lag)
        if isinstance(result, str):
            return {**answer, "result": hex(moved)}
        if moved <= head:
            [header] = await self._post(
                [
                    {
                        "jsonrpc": "2.0",
                        "id": "proxy-lag",
                        "method": "eth_getBlockByNumber",
                        "params": [hex(moved), False],
                    }
                ]
            )
            return {**answer, "result": header.get("result")}
        # A header nobody mined: its hash will not match the block later mined there.
        made_up = "0x" + self._rng.randbytes(32).hex()
        return {**answer, "result": {**result, "number": hex(moved), "hash": made_up, "parentHash": made_up}}

    async def _log_cap(self, rule: Rule, call: dict[str, Any], logs: Any) -> tuple[int, str] | None:
        params = call.get("params") or [{}]
        query = params[0] if isinstance(params[0], dict) else {}
        if "blockHash" in query:
            return None
        first = await self._block(query.get("fromBlock", "latest"))
        last = await self._block(query.get("toBlock", "latest"))
        if rule.max_blocks is not None and last - first + 1 > rule.max_blocks:
            n = rule.max_blocks
            if rule.style == "size":
                return -32602, f"eth_getLogs block range too large, max is {n} blocks"
            if rule.style == "range":
                suggestion = f"[{first:#x}, {first + n - 1:#x}]"
                return -32005, f"query exceeds block range limit. Try with this block range {suggestion}."
            return -32000, "block range too large"
        if rule.max_results is not None and isinstance(logs, list) and len(logs) > rule.max_results:
            m = rule.max_results
            if rule.style == "range":
                # Name the widest range from ``first`` that stays within the cap.
                blocks = sorted(int(raw["blockNumber"], 16) for raw in logs)
                fits = max(first, blocks[m] - 1)
                suggestion = f"[{first:#x}, {fits:#x}]"
                return (
                    -32005,
                    f"query returned more than {m} results. Try with this block range {suggestion}.",
                )
            return -32005, f"query returned more than {m} results"
        return None

    async def _block(self, tag: Any) -> int:
        if isinstance(tag, str) and tag.startswith("0x"):
            return int(tag, 16)
        if tag == "earliest":
            return 0
        [answer] = await self._post([{"jsonrpc": "2.0", "id": "proxy-head", "method": "eth_blockNumber"}])
        return int(answer["result"], 16)

    # --- upstream ---

    async def _post(self, calls: list[dict[str, Any]]) -> list[Any]:
        assert self._http is not None
        response = await self._http.post(self.upstream, content=json.dumps(calls).encode())
        answer = response.json()
        return answer if isinstance(answer, list) else [answer]

    async def _forward_raw(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        assert self._http is not None
        response = await self._http.post(self.upstream, content=body)
        kind = response.headers.get("content-type", "application/json")
        return response.status_code, {"Content-Type": kind}, response.content


@dataclasses.dataclass
class _Synthetic:
    answer: dict[str, Any]
    send: dict[str, Any] | None = None  # a call the node must still see in its place


def _is_head(call: dict[str, Any]) -> bool:
    """Whether ``call`` asks for the head: eth_blockNumber, or the latest block."""
    if call.get("method") == "eth_blockNumber":
        return True
    params = call.get("params") or []
    return call.get("method") == "eth_getBlockByNumber" and bool(params) and params[0] == "latest"


def _number(tag: Any, latest: int) -> int:
    """A block tag or quantity as a number, ``latest`` standing for the head."""
    if isinstance(tag, str) and tag.startswith("0x"):
        return int(tag, 16)
    return 0 if tag == "earliest" else latest


def _log_block(raw: dict[str, Any]) -> int:
    number = raw.get("blockNumber")
    return int(number, 16) if isinstance(number, str) else 0


def _error(call: dict[str, Any], code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call.get("id"), "error": {"code": code, "message": message}}


def _html(status: int) -> bytes:
    reason = _REASONS.get(status, "Error")
    return f"<html><body><h1>{status} {reason}</h1></body></html>".encode()
