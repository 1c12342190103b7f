"""An in-memory Ethereum JSON-RPC node to mount under respx.

It answers the handful of methods the watchers use, single or batched, and
has knobs for the ways real providers misbehave::

    node = FakeNode()
    with respx.mock(assert_all_called=False) as router:
        router.post(node.url).mock(side_effect=node)
        node.add_log("Attempted", task, provider, 5)
        node.mine()

The node only moves when the test calls ``add_log``/``mine``, so a test
decides exactly what is on chain between two polls. Every HTTP request and
every JSON-RPC call is recorded, so tests can assert what the node paid.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import respx
from eth_abi.abi import encode as abi_encode

from ogpu.chain import ChainConfig
from ogpu.events._abi import EVENTS, RawLog, canonical_type, load_abi

__all__ = [
    "NEXUS",
    "URL",
    "FakeNode",
    "RpcFault",
    "encode_event",
    "html_response",
    "http_response",
    "mounted",
    "raw_log",
    "wait_until",
]

URL = "http://127.0.0.1:8545/fake-node"
NEXUS = ChainConfig.get_contract_address("NEXUS", "mainnet")

_ABI = {entry["name"]: entry for entry in load_abi() if entry["type"] == "event"}


def _word(kind: str, value: Any) -> str:
    return "0x" + abi_encode([kind], [value]).hex()


def encode_event(event: str, *values: Any) -> tuple[list[str], str]:
    """``(topics, data)`` of a Nexus event log with ``values`` in ABI order.

    Built from the reference ABI with eth-abi, independently of the decoder
    under test; indexed values go to topics, the rest to ``data``.
    """
    inputs = _ABI[event]["inputs"]
    if len(values) != len(inputs):
        raise TypeError(f"{event} takes {len(inputs)} values, got {len(values)}")
    topics = [EVENTS[event].topic0]
    types: list[str] = []
    plain: list[Any] = []
    for param, value in zip(inputs, values, strict=True):
        if param["indexed"]:
            topics.append(_word(canonical_type(param), value))
        else:
            types.append(canonical_type(param))
            plain.append(value)
    return topics, "0x" + abi_encode(types, plain).hex()


def _hash(*parts: object) -> str:
    return "0x" + hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def raw_log(
    event: str,
    *values: Any,
    block: int = 1,
    log_index: int = 0,
    address: str = NEXUS,
    tx_hash: str | None = None,
    block_hash: str | None = None,
) -> RawLog:
    """A raw log dict as a node returns it, for decoding tests."""
    topics, data = encode_event(event, *values)
    return {
        "address": address.lower(),
        "topics": topics,
        "data": data,
        "blockNumber": hex(block),
        "blockHash": block_hash or _hash("block", block),
        "transactionHash": tx_hash or _hash("tx", block, log_index),
        "transactionIndex": hex(log_index),
        "logIndex": hex(log_index),
        "removed": False,
    }


def http_response(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """An HTTP answer to queue with :meth:`FakeNode.fail_next`."""
    if body is None:
        return httpx.Response(status, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def html_response(status: int = 200) -> httpx.Response:
    page = "<!DOCTYPE html><html><head><title>Welcome</title></head><body>It works!</body></html>"
    return httpx.Response(status, text=page, headers={"content-type": "text/html; charset=utf-8"})


class RpcFault(Exception):
    """Raised inside a handler to answer with a JSON-RPC error object."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Block:
    number: int
    hash: str
    parent_hash: str
    logs: list[RawLog] = field(default_factory=list)


@dataclass
class Filter:
    id: str
    address: str | None
    pending: list[RawLog] = field(default_factory=list)


HttpFault = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class FakeNode:
    """A chain of blocks with logs, and a JSON-RPC front for it.

    Knobs (all plain attributes, change them at any time):

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
      id the node does not know (see :meth:`forget_filters`); ganache answers
      -32700.
    * ``null_for_unknown_filter``: hardhat-like, ``eth_getFilterChanges`` on
      a filter the node does not know answers ``{"result": null}`` (in batches
      too) instead of an error.
    * ``report_removed``: geth-like, a :meth:`reorg` makes every filter report
      the replaced blocks' logs again with ``removed: true`` before the new
      ones; anvil-like (False, the default) filters only report the new ones.
    * ``get_logs_overreach``: ``eth_getLogs`` also returns the logs above
      ``toBlock``, up to the head (a proxy or node that ignores the bound).
    * ``orphans_by_hash``: ``eth_getBlockByHash`` and ``eth_getLogs`` with
      ``blockHash`` still find blocks a reorg replaced (geth keeps them);
      False answers them like unknown hashes.

    Head answers (``eth_blockNumber`` and ``eth_getBlockByNumber("latest")``)
    obey :meth:`lag_head` and :meth:`spike_head`; blocks are served by number
    and by hash with ``number, hash, parentHash, timestamp, transactions``,
    null for unknown ones. Chain-changing helpers: :meth:`mine`,
    :meth:`reorg`, :meth:`restart`. Answer-level faults: :meth:`fail_next`,
    :meth:`lose_next_answer`, :meth:`fail_rpc`, :meth:`fail_http_for`,
    :meth:`inject_filter_log` (also how a log with ``blockNumber`` 2**64
    reaches a filter answer: ``inject_filter_log(raw_log(..., block=2**64))``).
    """

    def __init__(
        self,
        *,
        url: str = URL,
        chain_id: int = 1071,
        filter_history: bool = False,
        filters_supported: bool = True,
        batch_supported: bool = True,
        reverse_answers: bool = False,
        max_range: int | None = None,
        range_error: str = "block range too large",
        range_code: int = -32005,
        max_results: int | None = None,
        results_error: str = "query returned more than {limit} results",
        results_code: int = -32005,
        filter_lost_code: int = -32000,
        filter_lost_message: str = "filter not found",
        null_for_unknown_filter: bool = False,
        report_removed: bool = False,
        get_logs_overreach: bool = False,
        orphans_by_hash: bool = True,
        start_block: int = 0,
    ) -> None:
        self.url = url
        self.chain_id = chain_id
        self.filter_history = filter_history
        self.filters_supported = filters_supported
        self.batch_supported = batch_supported
        self.reverse_answers = reverse_answers
        self.max_range = max_range
        self.range_error = range_error
        self.range_code = range_code
        self.max_results = max_results
        self.results_error = results_error
        self.results_code = results_code
        self.filter_lost_code = filter_lost_code
        self.filter_lost_message = filter_lost_message
        self.null_for_unknown_filter = null_for_unknown_filter
        self.report_removed = report_removed
        self.get_logs_overreach = get_logs_overreach
        self.orphans_by_hash = orphans_by_hash

        # Mixed into every block hash: a restarted or reorged chain never
        # reuses a hash of the chain it replaced.
        self._salt = ""
        self._epoch = 0
        self.blocks: list[Block] = []
        for number in range(start_block + 1):
            self._append_block(number, [])
        self.filters: dict[str, Filter] = {}
        self.created_filters: list[str] = []
        self._filter_ids = 0
        self._txs = 0
        self._pending: list[tuple[list[str], str, str]] = []

        # What the node was asked: one entry per HTTP request (its methods),
        # and one per JSON-RPC call.
        self.requests: list[list[str]] = []
        self.calls: list[tuple[str, list[Any]]] = []
        self.errors: list[tuple[str, int, str]] = []
        # Scripted faults: HTTP-level answers for the next requests, JSON-RPC
        # errors for the next calls of a method, offsets for the next heads.
        self._http_faults: deque[HttpFault] = deque()
        self.http_override: HttpFault | None = None
        self._rpc_faults: dict[str, deque[RpcFault]] = {}
        self._head_lag: deque[int] = deque()
        self._head_spike: int | None = None
        self._http_by_method: dict[str, deque[tuple[int, bool]]] = {}
        self._injected: list[RawLog] = []
        # Blocks (and their logs) that left the chain in a reorg or restart,
        # by hash: what a confirmations=0 watcher may have yielded legitimately.
        self.orphans: dict[str, Block] = {}
        self.head_answers = 0
        # The head the backend answering the current HTTP request claimed,
        # and the headers it made up for blocks not mined yet.
        self._view: int | None = None
        self._phantoms: dict[int, dict[str, Any]] = {}
        self._phantom_count = 0

    # --- building the chain ---

    @property
    def head(self) -> int:
        return self.blocks[-1].number

    def _append_block(self, number: int, logs: list[RawLog]) -> Block:
        parent = self.blocks[-1].hash if self.blocks else "0x" + "00" * 32
        # Unsalted hashes stay what they always were for the first chain.
        parts: tuple[object, ...] = (
            ("block", number, parent, self._salt) if self._salt else ("block", number, parent)
        )
        block = Block(number, _hash(*parts), parent, logs)
        self.blocks.append(block)
        return block

    def add_log(self, event: str, *values: Any, address: str = NEXUS) -> None:
        """Queue a log of a Nexus event for the next mined block."""
        topics, data = encode_event(event, *values)
        self._pending.append((topics, data, address.lower()))

    def add_raw(self, topics: list[str], data: str, address: str = NEXUS) -> None:
        """Queue a log with arbitrary topics and data (e.g. one that does not decode)."""
        self._pending.append((topics, data, address.lower()))

    def mine(self, count: int = 1) -> int:
        """Seal ``count`` blocks (the first takes the queued logs); return the new head."""
        for _ in range(count):
            self._seal(self._pending)
            self._pending = []
        return self.head

    def _seal(self, queued: list[tuple[list[str], str, str]]) -> Block:
        block = self._append_block(self.head + 1, [])
        for index, (topics, data, address) in enumerate(queued):
            self._txs += 1
            block.logs.append(
                {
                    "address": address,
                    "topics": list(topics),
                    "data": data,
                    "blockNumber": hex(block.number),
                    "blockHash": block.hash,
                    "transactionHash": _hash("tx", self._txs),
                    "transactionIndex": hex(index),
                    "logIndex": hex(index),
                    "removed": False,
                }
            )
        for flt in self.filters.values():
            flt.pending.extend(raw for raw in block.logs if _address_matches(flt.address, raw))
        return block

    def reorg(
        self,
        depth: int,
        logs_by_offset: dict[int, list[tuple[Any, ...]]] | None = None,
        length: int | None = None,
    ) -> int:
        """Replace the last ``depth`` blocks with ``length`` (default ``depth``) new ones; return the head.

        ``logs_by_offset[i]`` lists the logs of the i-th new block (0: the one
        right above the fork point), each as ``add_log`` takes it:
        ``("Attempted", task, provider, amount)``, or with a last element
        ``{"address": ...}`` for another contract. Logs queued with
        ``add_log`` stay queued for the next :meth:`mine`. Filters report the
        new blocks' logs, after the old ones marked removed if
        ``report_removed``.
        """
        if not 1 <= depth <= self.head:
            raise ValueError(f"cannot reorg {depth} blocks of a chain at height {self.head}")
        self._epoch += 1
        self._salt = f"{self._salt}/reorg{self._epoch}"
        replaced = self.blocks[-depth:]
        del self.blocks[-depth:]
        for block in replaced:
            self.orphans[block.hash] = block
        if self.report_removed:
            gone = [raw for block in reversed(replaced) for raw in reversed(block.logs)]
            for flt in self.filters.values():
                flt.pending.extend(
                    {**raw, "removed": True} for raw in gone if _address_matches(flt.address, raw)
                )
        wanted = logs_by_offset or {}
        for offset in range(depth if length is None else length):
            self._seal([_encoded(entry) for entry in wanted.get(offset, [])])
        return self.head

    def restart(self, chain_id: int | None = None, *, same_genesis: bool = False) -> None:
        """Start a new chain from block 0, as a dev node restarted on the same port does.

        Every block of the old chain gets a different hash on the new one
        (block 0 keeps its hash with ``same_genesis``), filters and queued
        logs are forgotten, and ``chain_id`` (if given) becomes the chain id.
        """
        self._epoch += 1
        genesis = self.blocks[0]
        for block in self.blocks[0 if not same_genesis else 1 :]:
            self.orphans[block.hash] = block
        self._salt = f"restart{self._epoch}"
        self.blocks = [genesis] if same_genesis else []
        if not same_genesis:
            self._append_block(0, [])
        self.filters.clear()
        self._pending = []
        self._phantoms.clear()
        if chain_id is not None:
            self.chain_id = chain_id

    def all_logs(self) -> list[RawLog]:
        """The logs of the canonical chain, in chain order."""
        return [raw for block in self.blocks for raw in block.logs]

    def orphaned_logs(self) -> list[RawLog]:
        """Logs of blocks that left the chain (reorgs, restarts)."""
        return [raw for block in self.orphans.values() for raw in block.logs]

    def push_removed(self, raw: RawLog) -> None:
        """Make every filter report ``raw`` as removed by a reorg (as geth does)."""
        for flt in self.filters.values():
            flt.pending.append({**raw, "removed": True})

    # --- scripted faults ---

    def fail_next(self, *answers: HttpFault) -> None:
        """Answer the next HTTP requests with these (a response, an exception to raise, or a callable)."""
        self._http_faults.extend(answers)

    def lose_next_answer(self) -> None:
        """Process the next request as usual, then lose the answer on the way back."""

        def lost(request: httpx.Request) -> httpx.Response:
            self._serve(json.loads(request.content))
            raise httpx.ReadTimeout("the answer never arrived", request=request)

        self.fail_next(lost)

    def fail_rpc(self, method: str, code: int, message: str, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with a JSON-RPC error."""
        self._rpc_faults.setdefault(method, deque()).extend(RpcFault(code, message) for _ in range(times))

    def lag_head(self, offsets: Iterable[int]) -> None:
        """Report the head this many blocks lower in the next head answers.

        Head answers are ``eth_blockNumber`` and ``eth_getBlockByNumber("latest")``.
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

    def forget_filters(self) -> None:
        """Drop every filter, as a node restart or another load-balanced backend would."""
        self.filters.clear()

    def block_by_hash(self, block_hash: str) -> Block | None:
        """A canonical block, or (with ``orphans_by_hash``) one a reorg replaced."""
        wanted = block_hash.lower()
        for block in self.blocks:
            if block.hash == wanted:
                return block
        return self.orphans.get(wanted) if self.orphans_by_hash else None

    # --- what the node saw ---

    def count(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    # --- the HTTP side ---

    def __call__(self, request: httpx.Request) -> httpx.Response:
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
                return httpx.Response(
                    200,
                    json={
                        "jsonrpc": "2.0",
                        "id": None,
                        "error": {"code": -32600, "message": "batch requests are not supported"},
                    },
                )
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
                "hash": _hash("phantom", claimed, self._phantom_count),
                "parentHash": _hash("phantom-parent", claimed, self._phantom_count),
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
        address = query.get("address")
        flt = Filter(filter_id, address.lower() if isinstance(address, str) else None)
        if self.filter_history and "fromBlock" in query:
            first = self._block_tag(query["fromBlock"], self.head)
            flt.pending = [
                raw
                for block in self.blocks[first : self.head + 1]
                for raw in block.logs
                if _address_matches(flt.address, raw)
            ]
        self.filters[filter_id] = flt
        self.created_filters.append(filter_id)
        return filter_id

    def _known_filter(self, params: list[Any]) -> Filter:
        flt = self.filters.get(params[0] if params else "")
        if flt is None:
            raise RpcFault(self.filter_lost_code, self.filter_lost_message)
        return flt

    def _filter_changes(self, params: list[Any]) -> list[RawLog] | None:
        if self.null_for_unknown_filter and (params[0] if params else "") not in self.filters:
            return None
        flt = self._known_filter(params)
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
            return [raw for raw in block.logs if _address_matches(_lower(query.get("address")), raw)]
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
        address = query.get("address")
        wanted = address.lower() if isinstance(address, str) else None
        topics = query.get("topics") or []
        found = [
            raw
            for block in self.blocks[first : last + 1]
            for raw in block.logs
            if _address_matches(wanted, raw) and _topics_match(topics, raw["topics"])
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


def _encoded(entry: tuple[Any, ...]) -> tuple[list[str], str, str]:
    """A log given as ``add_log`` takes it, optionally ending in ``{"address": ...}``."""
    address = NEXUS
    if entry and isinstance(entry[-1], dict):
        address = entry[-1]["address"]
        entry = entry[:-1]
    topics, data = encode_event(entry[0], *entry[1:])
    return topics, data, address.lower()


def _address_matches(wanted: str | None, raw: RawLog) -> bool:
    return wanted is None or raw["address"].lower() == wanted


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


@contextlib.contextmanager
def mounted(node: FakeNode) -> Iterator[respx.MockRouter]:
    """Serve ``node`` at its URL for every httpx client created meanwhile."""
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        router.post(node.url).mock(side_effect=node)
        yield router


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Let the event loop run until ``predicate()`` holds; fail the test if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {what}")
        await asyncio.sleep(0.002)
