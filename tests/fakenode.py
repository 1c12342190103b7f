"""The project's in-memory node: ``ogpu.events.testing.FakeNode`` with the spellings its tests use.

Everything the node does lives in the public kit (``ogpu/events/testing.py``
over ``_fakechain`` and ``_fakerpc``), so the whole suite tests it. This
layer adds what only this project's adversarial tests want:

* the mainnet node at a fixed URL (``URL``), with the node's knobs as
  keyword arguments (``FakeNode(filter_history=True, max_range=5)``);
* logs by ABI-ordered values: ``add_log("Attempted", task, provider, 5)``
  then ``mine()``, and ``reorg(depth, {offset: [("Attempted", ...)]})``;
* ``mounted(node)``, serving it through respx for tests that want respx's
  call records; ``with node:`` (the kit's own way, no respx) works too;
* ``raw_log`` for decoding tests, ``html_response``, ``wait_until``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx
import respx

from ogpu.chain import ChainConfig
from ogpu.events._codec.abi import RawLog
from ogpu.events._codec.encode import encode_event
from ogpu.events._fake.chain import EncodedLog, fake_hash
from ogpu.events._fake.logs import decoded
from ogpu.events._fake.rpc import FakeRpc, RpcFault, http_response
from ogpu.events.testing import FakeNode as KitNode

__all__ = [
    "NEXUS",
    "URL",
    "FakeNode",
    "ProjectRpc",
    "RpcFault",
    "encode_event",
    "html_response",
    "http_response",
    "inner",
    "mounted",
    "raw_log",
    "wait_until",
]

URL = "http://127.0.0.1:8545/fake-node"
NEXUS = ChainConfig.get_contract_address("NEXUS", "mainnet")


class ProjectRpc(FakeRpc):
    """The kit's JSON-RPC front, with the faults only this project's adversarial tests want."""

    def __init__(self, *, url: str, chain_id: int, nexus: str, start_block: int = 0) -> None:
        super().__init__(url=url, chain_id=chain_id, nexus=nexus, start_block=start_block)
        self._nulls: dict[str, int] = {}
        self._behind = (0, 0)
        self._lag_now = 0
        # False: eth_getLogs by the hash of a block a reorg replaced answers
        # "unknown block", though its header is still found by hash.
        self.orphan_logs_by_hash = True

    def behind(self, blocks: int, requests: int) -> None:
        """The next ``requests`` HTTP requests reach a backend ``blocks`` behind the head.

        It reports that lower head and knows no block above it, by number or
        by hash (null, as nodes answer for blocks they have not got).
        """
        self._behind = (blocks, requests)

    def _serve(self, body: Any) -> httpx.Response:
        blocks, requests = self._behind
        self._lag_now = blocks if requests > 0 else 0
        self._behind = (blocks, max(0, requests - 1))
        return super()._serve(body)

    def _head_answer(self) -> int:
        if self._lag_now:
            self.head_answers += 1
            self._view = self.head - self._lag_now
            return self._view
        return super()._head_answer()

    def _get_block(self, params: list[Any]) -> dict[str, Any] | None:
        tag = params[0] if params else None
        if (
            self._lag_now
            and tag not in ("latest", "pending")
            and self._block_tag(tag, 0) > self.head - self._lag_now
        ):
            return None
        return super()._get_block(params)

    def _get_block_by_hash(self, params: list[Any]) -> dict[str, Any] | None:
        found = super()._get_block_by_hash(params)
        if found is not None and self._lag_now and int(found["number"], 16) > self.head - self._lag_now:
            return None
        return found

    def _get_logs(self, params: list[Any]) -> list[RawLog]:
        query = params[0] if params else {}
        if "blockHash" in query and not self.orphan_logs_by_hash:
            block = self.block_by_hash(str(query["blockHash"]))
            if block is not None and block.hash in self.orphans:
                # geth keeps a side block's header, not its receipts' index by hash.
                raise RpcFault(-32000, "unknown block")
        return super()._get_logs(params)

    def answer_null(self, method: str, times: int = 1) -> None:
        """Answer ``null`` (a result, not an error) to the next ``times`` calls of ``method``."""
        self._nulls[method] = self._nulls.get(method, 0) + times

    def _answer(self, item: Any) -> dict[str, Any]:
        method = item.get("method") if isinstance(item, dict) else None
        if isinstance(method, str) and self._nulls.get(method, 0) > 0:
            self._nulls[method] -= 1
            self.calls.append((method, item.get("params") or []))
            return {"jsonrpc": "2.0", "id": item.get("id"), "result": None}
        return super()._answer(item)

    def add_log(self, event: str, *values: Any, address: str = NEXUS) -> None:
        """Queue a log of a Nexus event, values in ABI order, for the next mined block."""
        topics, data = encode_event(event, *values)
        self.add_raw(topics, data, address)


# The kit node's own state, kept on it; every other attribute a test sets or
# reads is the inner node's (knobs, records, the chain).
_KIT_OWN = frozenset(
    {"_rpc", "_played", "_pin_chain", "_wake_streams", "_awake_until", "_transport", "_saved"}
)


class FakeNode(KitNode):
    """The kit's node on mainnet at ``URL``, knobs settable at construction (see ``_fake/rpc.py``).

    The kit keeps its in-memory node private; this one hands a test every
    knob and record of it (``node.max_range = 5``, ``node.calls``,
    ``node.lag_head([2])``) as if they were its own.
    """

    _rpc_type = ProjectRpc

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
        super().__init__(chain="mainnet", url=url, start_block=start_block)
        self._pin_chain = False  # tests decide the current chain themselves (OGPU_CHAIN, set_chain)
        rpc = self._rpc
        rpc.chain_id = chain_id
        rpc.filter_history = filter_history
        rpc.filters_supported = filters_supported
        rpc.batch_supported = batch_supported
        rpc.reverse_answers = reverse_answers
        rpc.max_range = max_range
        rpc.range_error = range_error
        rpc.range_code = range_code
        rpc.max_results = max_results
        rpc.results_error = results_error
        rpc.results_code = results_code
        rpc.filter_lost_code = filter_lost_code
        rpc.filter_lost_message = filter_lost_message
        rpc.null_for_unknown_filter = null_for_unknown_filter
        rpc.report_removed = report_removed
        rpc.get_logs_overreach = get_logs_overreach
        rpc.orphans_by_hash = orphans_by_hash

    def __getattr__(self, name: str) -> Any:
        # Only for names the kit node lacks: the inner node's.
        if name in _KIT_OWN:
            raise AttributeError(name)
        return getattr(self._rpc, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _KIT_OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._rpc, name, value)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Answer one HTTP request, as respx's side effect (``mounted``) or a transport calls it."""
        return self._rpc(request)

    def reorg(
        self,
        depth: int,
        events: Sequence[tuple[Any, ...]] | Mapping[int, Sequence[tuple[Any, ...]]] | None = None,
        *,
        length: int | None = None,
    ) -> list[Any]:
        """The kit's reorg, also taking ``{offset: [("Attempted", task, provider, amount), ...]}``.

        A positional entry may end with ``{"address": ...}`` for another
        contract; the kit's ``(event, {fields})`` pairs work as well.
        """
        if isinstance(events, Mapping) and any(
            not _is_pair(entry) for entries in events.values() for entry in entries
        ):
            logs = {offset: [_encoded(entry) for entry in entries] for offset, entries in events.items()}
            return decoded(self._rpc.replace_blocks(depth, logs, length))
        pairs: Any = events  # (event, {fields}) pairs, as the kit takes them
        return super().reorg(depth, pairs, length=length)


def inner(node: KitNode) -> FakeRpc:
    """The in-memory node (chain and JSON-RPC front) inside any kit ``FakeNode``, for assertions on it."""
    return node._rpc


def _is_pair(entry: tuple[Any, ...]) -> bool:
    return len(entry) == 2 and isinstance(entry[1], Mapping) and "address" not in entry[1]


def _encoded(entry: tuple[Any, ...]) -> EncodedLog:
    """A log given as ``add_log`` takes it, optionally ending in ``{"address": ...}``."""
    address = NEXUS
    if entry and isinstance(entry[-1], dict):
        address = entry[-1]["address"]
        entry = entry[:-1]
    topics, data = encode_event(entry[0], *entry[1:])
    return topics, data, address.lower()


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
        "blockHash": block_hash or fake_hash("block", block),
        "transactionHash": tx_hash or fake_hash("tx", block, log_index),
        "transactionIndex": hex(log_index),
        "logIndex": hex(log_index),
        "removed": False,
    }


def html_response(status: int = 200) -> httpx.Response:
    page = "<!DOCTYPE html><html><head><title>Welcome</title></head><body>It works!</body></html>"
    return httpx.Response(status, text=page, headers={"content-type": "text/html; charset=utf-8"})


@contextlib.contextmanager
def mounted(node: FakeNode) -> Iterator[respx.MockRouter]:
    """Serve ``node`` at its URL through respx, for every httpx client created meanwhile."""
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
