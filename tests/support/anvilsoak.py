"""A seeded random soak of the shared stream on a real anvil, through the fault proxy.

The in-memory soak (``tests/support/soak.py``) runs hundreds of schedules a minute
against a node the tests wrote; this one runs a few against anvil, so what
anvil really answers (its filters, its ``anvil_reorg``, its hashes) is under
the same churn. One seed is one schedule:

* 1 to 3 watchers to begin with, at most 4 at a time: ``watch_attempted``
  scoped to one of three tasks, ``watch_nexus()`` (every event) or
  ``watch_nexus("Attempted")``, each with ``from_block`` None, in the past or
  in the future, and ``confirmations`` 0, 1 or 3, polling every 0.05 s;
* watchers leave (``break`` after some events, or their task cancelled) and
  resume from the block after the last event they saw;
* between steps, sent straight to anvil: events emitted (sometimes several
  in one block), empty blocks mined, now and then an ``anvil_reorg`` of depth
  1 or 2 with new events in the replacing blocks; and through the
  :class:`~tests.support.faultproxy.FaultProxy` the watchers use, one fault at a time:
  connections dropped before or after anvil acted, HTTP 5xx and 429,
  filters forgotten (an error, or hardhat's null), heads lagging or spiking
  1,000 blocks ahead, another contract's log in a filter answer; some seeds
  have ``eth_getLogs`` answering beyond the asked range throughout.

At the end the faults stop, a sentinel is emitted for every task (all in one
block) with 4 blocks on top, and once every running watcher has its
sentinels (or 10 s passed) they are stopped and judged against anvil's final
chain, read with ``eth_getLogs`` over the Nexus address and checked against
the hash of every block:

* confirmations > 0 (and no reorg deeper than that while it ran): exactly
  the canonical matching events of its range, in chain order, no repeats;
* confirmations = 0: every canonical matching event of its range exactly
  once, in chain order among themselves; anything else it yielded must be a
  log of a block a reorg replaced (those are read before each reorg).

A watcher's range is as in the in-memory soak: from ``from_block`` (or the
block after the head when it joined), to the sentinel block, or for one that
left, to the last canonical event it yielded.

The seed snapshots the node first and reverts to it at the end, so seeds run
one after another on one anvil each start from the same clean chain (the
three task addresses are drawn from the seed too). ``run_anvil_seed`` is used
by ``tests/nodes/test_anvil_soak.py`` and ``scripts/fault_matrix.py --anvil-soak N``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx

from ogpu import ChainConfig
from ogpu.events import watch_attempted, watch_nexus
from ogpu.events._codec.abi import RawLog
from ogpu.events._devnode.nodes import EMITTER_CODE, event_calldata
from ogpu.events._stream.hub import active_hubs
from tests.support.fakenode import NEXUS
from tests.support.faultproxy import Fault, FaultProxy, Rule
from tests.support.faultscenarios import _CHANGES, _FNF_CODES, _HEADS, _LOGS
from tests.support.soak import SENTINEL, SoakResult, Watched, _key, _order, _stream_gone, _until, fast_backoff

__all__ = ["FAULTS", "SoakResult", "run_anvil_seed"]

POLL = 0.05
# The stream's retry delays (and a 429's Retry-After) are scaled by this.
BACKOFF_SCALE = 0.05
MAX_WATCHERS = 4
FINAL_WAIT = 10.0
NOBODY = "0x" + "00" * 20


# Faults thrown between steps, with their weights.
_BETWEEN_STEPS = {
    "drop": 0.10,  # connection dropped before anvil saw the request
    "lost-answer": 0.14,  # anvil acted, the connection dropped before the answer
    "http": 0.14,  # HTTP 500/502/503 (before or after anvil acted), or 429 with Retry-After
    "lost-filter": 0.10,  # the filter forgotten, "filter not found"
    "null-filter": 0.07,  # the filter forgotten, null answered for it (hardhat)
    "lag": 0.14,  # head answers 1-3 blocks behind, 1-4 times
    "spike": 0.06,  # one head answer 1,000 blocks ahead
    "foreign": 0.08,  # another contract's log in a filter answer
    "reorg": 0.17,  # anvil_reorg of depth 1-2, new events in the new blocks
}
FAULTS: tuple[str, ...] = (*_BETWEEN_STEPS, "overreach")


class _Anvil:
    """A synchronous JSON-RPC handle on the node itself (never through the proxy).

    The calls block the event loop on purpose: the chain changes only between
    the stream's steps, as in the in-memory soak.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(timeout=30.0)
        self._ids = 0
        self.account = ""

    def close(self) -> None:
        self._http.close()

    def rpc(self, method: str, *params: Any) -> Any:
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}
        answer = self._http.post(self.url, json=body).json()
        if "error" in answer:
            raise RuntimeError(f"{method} failed: {answer['error']}")
        return answer["result"]

    def head(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def tx(self, event: str, *values: Any) -> dict[str, str]:
        data = event_calldata(event, *values)
        return {"from": self.account, "to": NEXUS, "data": data, "gas": "0x30000"}

    def send(self, request: dict[str, str]) -> str:
        return str(self.rpc("eth_sendTransaction", request))

    def mined(self, tx_hash: str) -> None:
        """Wait until ``tx_hash`` is mined (automine may answer before it has)."""
        for _ in range(1000):
            if self.rpc("eth_getTransactionReceipt", tx_hash) is not None:
                return
        raise RuntimeError(f"{tx_hash} never mined")

    @contextlib.contextmanager
    def one_block(self) -> Iterator[None]:
        self.rpc("evm_setAutomine", False)
        try:
            yield
            self.rpc("anvil_mine", "0x1")
        finally:
            self.rpc("evm_setAutomine", True)

    def logs(self, first: int, last: int) -> list[RawLog]:
        query = {"address": NEXUS, "fromBlock": hex(first), "toBlock": hex(last)}
        found: list[RawLog] = self.rpc("eth_getLogs", query)
        return found

    def block_hash(self, number: int) -> str:
        return str(self.rpc("eth_getBlockByNumber", hex(number), False)["hash"]).lower()


class _AnvilSoak:
    def __init__(
        self, seed: int, node: _Anvil, proxy: FaultProxy, steps: int, faults: frozenset[str]
    ) -> None:
        self.seed = seed
        self.node = node
        self.proxy = proxy
        self.steps = steps
        self.faults = faults
        self.rng = rng = random.Random(seed)
        self.tasks = ["0x" + rng.randbytes(20).hex() for _ in range(3)]
        self.overreach = "overreach" in faults and rng.random() < 0.3
        self.watchers: list[Watched] = []
        self.amount = 0
        self.head = node.head()
        # Every log of every block a reorg replaced, read just before it.
        self.orphans: list[RawLog] = []
        self.reorgs: list[int] = []
        self.fault_log: list[str] = []
        self.sentinel_wait = 0.0

    @property
    def settings(self) -> str:
        kinds = sorted(set(self.fault_log))
        return (
            f"anvil, {'logs beyond range, ' if self.overreach else ''}reorgs {self.reorgs or 'none'}, "
            f"faults {','.join(kinds) or 'none'}, sentinels after {self.sentinel_wait:.1f} s"
        )

    # --- the node side ---

    def _values(self) -> tuple[Any, ...]:
        self.amount += 1
        task = self.rng.choice(self.tasks)
        if self.rng.random() < 0.2:
            return ("TaskStatusChanged", task, self.rng.randrange(6))
        return ("Attempted", task, "0x" + self.rng.randbytes(20).hex(), self.amount)

    def _mine(self) -> None:
        rng, node = self.rng, self.node
        for _ in range(rng.choice([1, 1, 2])):
            count = 8 if rng.random() < 0.05 else rng.choice([0, 1, 1, 2, 3])
            if count == 0:
                node.rpc("anvil_mine", "0x1")
            elif count == 1:
                node.mined(node.send(node.tx(*self._values())))
            else:
                with node.one_block():
                    for _ in range(count):
                        node.send(node.tx(*self._values()))
        self.head = node.head()

    def _reorg(self) -> None:
        rng, node = self.rng, self.node
        depth = rng.randint(1, 2)
        if self.head <= depth + 1:
            return
        self.orphans.extend(node.logs(self.head - depth + 1, self.head))
        replacing = [
            [
                node.tx("Attempted", rng.choice(self.tasks), "0x" + rng.randbytes(20).hex(), self._next()),
                offset,
            ]
            for offset in range(depth)
            for _ in range(rng.choice([0, 1, 2]))
        ]
        node.rpc("anvil_reorg", depth, replacing)
        if rng.random() < 0.3:
            node.rpc("anvil_mine", "0x1")  # the new branch longer than the old
        self.head = node.head()
        self.reorgs.append(depth)
        # Every watcher, those that left too: a block yielded with N blocks on
        # top can be orphaned later only by a reorg deeper than N, whenever it comes.
        for w in self.watchers:
            w.deepest_reorg = max(w.deepest_reorg, depth)

    def _next(self) -> int:
        self.amount += 1
        return self.amount

    def _fault(self) -> None:
        rng = self.rng
        kinds = [kind for kind in _BETWEEN_STEPS if kind in self.faults]
        if not kinds:
            return
        kind = rng.choices(kinds, weights=[_BETWEEN_STEPS[k] for k in kinds])[0]
        self.fault_log.append(kind)
        if kind == "reorg":
            self._reorg()
            return
        rule: Rule
        if kind == "drop":
            rule = Rule(Fault.DROP_BEFORE, times=1)
        elif kind == "lost-answer":
            rule = Rule(Fault.DROP_AFTER, rng.choice([frozenset(), _CHANGES, _LOGS]), times=1)
        elif kind == "http":
            status = rng.choice([500, 502, 503, 429])
            if status == 429:
                rule = Rule(Fault.RATE_LIMIT, times=1, retry_after=rng.choice(["0", "1"]))
            else:
                rule = Rule(Fault.HTTP_ERROR, times=1, status=status, forward=rng.random() < 0.5)
        elif kind == "lost-filter":
            rule = Rule(Fault.FILTER_NOT_FOUND, _CHANGES, times=1, codes=(rng.choice(_FNF_CODES),))
        elif kind == "null-filter":
            rule = Rule(Fault.NULL_FILTER, _CHANGES, times=1)
        elif kind == "lag":
            rule = Rule(Fault.LAG_HEAD, _HEADS, times=rng.randint(1, 4), lag=rng.randint(1, 3))
        elif kind == "spike":
            rule = Rule(Fault.HEAD_SPIKE, _HEADS, times=1, lag=1000)
        else:
            rule = Rule(Fault.FOREIGN_LOG, _CHANGES, times=1)
        self.proxy.add(rule)

    # --- the watcher side ---

    def _start(self, from_block: int | None = None, like: Watched | None = None) -> None:
        rng = self.rng
        if like is None:
            kind = rng.choice(["attempted", "attempted", "nexus", "nexus-attempted"])
            task = rng.choice(self.tasks) if kind == "attempted" else None
            confirmations = rng.choice([0, 1, 3])
            which = rng.choice(["none", "past", "future"])
            if which == "past":
                from_block = rng.randint(0, self.head)
            elif which == "future":
                from_block = self.head + rng.randint(1, 4)
        else:
            kind, task, confirmations = like.kind, like.task, like.confirmations
        w = Watched(
            label=f"w{len(self.watchers)}",
            kind=kind,
            task=task,
            from_block=from_block,
            confirmations=confirmations,
            leave=rng.choice(["stay", "stay", "break", "cancel"]),
            leave_after=rng.randint(1, 10),
        )
        gen: AsyncGenerator[Any, None]
        if kind == "attempted":
            assert task is not None
            gen = watch_attempted(
                task, from_block=from_block, poll_interval=POLL, confirmations=confirmations
            )
        elif kind == "nexus":
            gen = watch_nexus(from_block=from_block, poll_interval=POLL, confirmations=confirmations)
        else:
            gen = watch_nexus(
                "Attempted", from_block=from_block, poll_interval=POLL, confirmations=confirmations
            )
        w.job = asyncio.get_running_loop().create_task(self._consume(w, gen), name=f"anvil soak {w.label}")
        self.watchers.append(w)

    async def _consume(self, w: Watched, gen: AsyncGenerator[Any, None]) -> None:
        try:
            async with contextlib.aclosing(gen):
                # The chain only changes while this task waits, so the head now
                # is the head when the first __anext__ begins.
                w.joined_head = self.head
                w.fresh = not any(hub.head is not None for hub in active_hubs())
                async for event in gen:
                    w.events.append(event)
                    if w.leave == "break" and len(w.events) >= w.leave_after:
                        return
            w.error = "the watcher ended by itself"
        except Exception as exc:
            w.error = f"{type(exc).__name__}: {exc}"
        finally:
            w.done = True

    def _resume(self) -> None:
        for w in self.watchers:
            if w.done and w.events and not w.resumed and w.error is None:
                w.resumed = True
                if self.rng.random() < 0.6 and self._active() < MAX_WATCHERS:
                    self._start(from_block=w.events[-1].block_number + 1, like=w)

    def _active(self) -> int:
        return sum(1 for w in self.watchers if not w.done)

    async def _polls(self, count: int) -> None:
        """Let the stream make ``count`` more requests (or a short while, if it makes none)."""
        start = self.proxy.requests
        await _until(lambda: self.proxy.requests >= start + count, 0.3 if self._active() else POLL)
        hubs = active_hubs()
        for w in self.watchers:
            if w.fresh and w.first_head is None and hubs and hubs[0].head is not None:
                w.first_head = hubs[0].head

    # --- the run ---

    async def run(self) -> SoakResult:
        rng, node = self.rng, self.node
        for _ in range(rng.randint(2, 5)):
            self._mine()  # some history for watchers from a past block
        if self.overreach:
            self.proxy.add(Rule(Fault.OVERREACH, _LOGS))
        for _ in range(rng.randint(1, 3)):
            self._start()
        for _ in range(self.steps):
            if rng.random() < 0.6:
                self._mine()
            if rng.random() < 0.45:
                self._fault()
            if rng.random() < 0.12 and self._active() < MAX_WATCHERS:
                self._start()
            if rng.random() < 0.08:
                running = [w for w in self.watchers if not w.done and w.leave == "cancel" and w.job]
                if running:
                    job = rng.choice(running).job
                    assert job is not None
                    job.cancel()
            self._resume()
            await self._polls(rng.choice([1, 1, 2, 3]))
        # The end: no fault left, a sentinel per task in one block, 4 blocks on top.
        self.proxy.clear()
        with node.one_block():
            for task in self.tasks:
                node.send(node.tx("Attempted", task, NOBODY, SENTINEL))
        sentinel_block = node.head()
        sentinels = node.logs(sentinel_block, sentinel_block)
        node.rpc("anvil_mine", "0x4")
        self.head = node.head()
        loop = asyncio.get_running_loop()
        waited = loop.time()
        await _until(lambda: all(self._finished(w, sentinels) for w in self.watchers), FINAL_WAIT)
        self.sentinel_wait = loop.time() - waited
        for w in self.watchers:
            if w.job is not None and not w.job.done():
                w.at_end = True
                w.job.cancel()
        for w in self.watchers:
            if w.job is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await w.job
        return self._judge(sentinel_block)

    @staticmethod
    def _finished(w: Watched, sentinels: list[RawLog]) -> bool:
        if w.done or (w.job is not None and w.job.done()):
            return True  # left (or cancelled before it ever ran)
        have = {(str(e.block_hash).lower(), e.log_index) for e in w.events}
        return all(_key(raw) in have for raw in sentinels if w.wants(raw))

    def _judge(self, sentinel_block: int) -> SoakResult:
        node = self.node
        head = node.head()
        canonical = node.logs(0, head)
        problems: list[str] = []
        # The logs must sit in the blocks the chain has now: else the judge itself is wrong.
        hashes = {n: node.block_hash(n) for n in range(head + 1)}
        for raw in canonical:
            if str(raw["blockHash"]).lower() != hashes[int(raw["blockNumber"], 16)]:
                problems.append(
                    f"harness: eth_getLogs gave a log of block hash {raw['blockHash']}, not canonical"
                )
        canonical_keys = {_key(raw): raw for raw in canonical}
        orphan_keys = {_key(raw) for raw in self.orphans} - set(canonical_keys)
        lost = repeated = extra = disordered = 0
        for w in self.watchers:
            if w.job is not None and w.job.cancelled() and w.joined_head is None:
                continue  # cancelled before it ever ran: it asked for nothing
            got = [(str(e.block_hash).lower(), int(e.log_index)) for e in w.events]
            what = (
                f"{w.label} {w.kind}{'(' + w.task[:8] + ')' if w.task else ''} from_block={w.from_block} "
                f"confirmations={w.confirmations} leave={w.leave} joined at head {w.joined_head}"
                + (f" (stream's first head {w.first_head})" if w.fresh else "")
                + ", "
                f"deepest reorg {w.deepest_reorg}, {'ran to the end' if w.at_end else 'left'}, "
                f"yielded {len(w.events)}"
                + (f" (blocks {w.events[0].block_number}..{w.events[-1].block_number})" if w.events else "")
            )
            if w.error is not None:
                problems.append(f"{what}: raised {w.error}")
            dupes = len(got) - len(set(got))
            repeated += dupes
            if dupes:
                problems.append(f"{what}: {dupes} repeated")
            on_chain = [canonical_keys[k] for k in got if k in canonical_keys]
            if not w.at_end and w.error is None:
                end = max((_order(raw) for raw in on_chain), default=(-1, -1))
            else:
                end = (sentinel_block, 1 << 30)
            if w.from_block is not None:
                start = w.from_block
            elif w.fresh and w.first_head is not None:
                start = max(w.first_head, w.joined_head or 0) + 1
            else:
                start = (w.joined_head if w.joined_head is not None else head) + 1
            required = [
                raw
                for raw in canonical
                if w.wants(raw) and start <= int(raw["blockNumber"], 16) and _order(raw) <= end
            ]
            have = set(got)
            missing = [raw for raw in required if _key(raw) not in have]
            if missing:
                lost += len(missing)
                blocks = sorted({int(raw["blockNumber"], 16) for raw in missing})
                problems.append(f"{what}: lost {len(missing)} (blocks {blocks[:10]})")
            orders = [_order(raw) for raw in on_chain]
            out = sum(1 for a, b in itertools.pairwise(orders) if a >= b)
            if out:
                disordered += out
                problems.append(f"{what}: {out} canonical events out of order")
            allowed_extra = orphan_keys if w.exposed else set()
            wrong = [
                k
                for k in have
                if (k in canonical_keys and not w.wants(canonical_keys[k]))
                or (k not in canonical_keys and k not in allowed_extra)
                or (
                    k in canonical_keys
                    and w.from_block is not None
                    and int(canonical_keys[k]["blockNumber"], 16) < w.from_block
                )
            ]
            if wrong:
                extra += len(wrong)
                kinds = sorted(
                    {
                        "orphan" if k in orphan_keys else "canonical" if k in canonical_keys else "foreign"
                        for k in wrong
                    }
                )
                problems.append(f"{what}: {len(wrong)} extra ({', '.join(kinds)})")
        return SoakResult(
            self.seed, len(self.watchers), lost, repeated, extra, disordered, problems, self.settings
        )


async def run_anvil_seed(
    seed: int, anvil_url: str, *, steps: int = 150, faults: frozenset[str] | None = None
) -> SoakResult:
    """Run one seeded schedule against the anvil at ``anvil_url`` and judge every watcher.

    Installs the emitter at the Nexus address, snapshots the chain first and
    reverts to the snapshot afterwards, so one anvil serves many seeds.
    ``faults`` picks the kinds thrown (names in ``FAULTS``; default all);
    with none the watchers still churn over a calm node (the control run).
    """
    kinds = frozenset(FAULTS) if faults is None else faults
    unknown = kinds - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown anvil soak faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    node = _Anvil(anvil_url)
    try:
        node.rpc("anvil_setCode", NEXUS, EMITTER_CODE)
        node.account = node.rpc("eth_accounts")[0]
        node.rpc("evm_setAutomine", True)
        snapshot = node.rpc("evm_snapshot")
        try:
            async with FaultProxy(anvil_url, seed=seed) as proxy:
                ChainConfig.set_rpc(proxy.url)
                try:
                    with fast_backoff(BACKOFF_SCALE):
                        soak = _AnvilSoak(seed, node, proxy, steps, kinds)
                        try:
                            result = await soak.run()
                        finally:
                            proxy.clear()
                            for w in soak.watchers:
                                if w.job is not None and not w.job.done():
                                    w.job.cancel()
                            await _stream_gone()
                finally:
                    ChainConfig.reset_rpc()
        finally:
            node.rpc("evm_revert", snapshot)
    finally:
        node.close()
    return result
