"""One seed of the deterministic simulation: a schedule of watchers, mining and faults on virtual time.

Everything random comes from the seed, through three generators made from
it (the schedule, the network's latencies, the stream's backoff jitter):
separate streams so that a change in how often the stream retries does not
reshuffle the schedule of a seed. The stream's wall clock reads (the
retrier's startup deadline, the date in a ``Retry-After``) are pointed at
the loop's virtual clock. A seed is therefore one exact run: the same seed
sends the same JSON-RPC requests, byte for byte (``SeedResult.digest``).

The schedule: a node with per-seed quirks (no filters, no batches, provider
range and result caps, logs beyond the range, answers in reverse, filters
that report history or removed logs, side blocks kept by hash), a chain with
history, then a few dozen steps a few virtual seconds apart, each mining,
throwing a fault (see ``FAULTS``), starting a watcher (scoped or not, every
``from_block`` kind, confirmations 0 to 4), cancelling one, or resuming one
that left (``from_block`` after its last event, ``after=`` the event, or
after a ``(block, index)`` pair whose block is still canonical). At the end
the faults stop, a sentinel block is mined for every scope with enough
blocks on top for every depth, and the oracle (``oracle.judge``) judges
every watcher against the node's final chain; the stream must also have
uninstalled its filters and stopped its tasks.

Seeds from 1,000,000 on follow the chain through two to four endpoints,
each failing its own way (``tests/sim/endpoints.py``), judged the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import functools
import itertools
import logging
import random
import types
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx

from ogpu.chain import ChainConfig
from ogpu.events import watch_attempted, watch_nexus, watch_task_status_changed
from ogpu.events._codec.abi import EVENTS, RawLog
from ogpu.events._codec.position import EventPosition
from ogpu.events._net import endpoints as _endpoints
from ogpu.events._net import faults as _faults
from ogpu.events._net import rpc as _rpc
from ogpu.events._stream import lane as _lane
from ogpu.events._stream.hub import active_hubs
from tests.fakenode import NEXUS, encode_event, http_response, raw_log
from tests.sim.endpoints import ENDPOINT_FAULTS, SimFront, is_endpoint_seed, make_fronts, throw
from tests.sim.loop import VirtualClockLoop, run_virtual
from tests.sim.node import SimNode
from tests.sim.oracle import Expectation, Verdict, Yielded, judge, key_of, order_of

__all__ = [
    "FAULTS",
    "KNOWN_FAILURES_FILE",
    "SeedResult",
    "known_failures",
    "replay_command",
    "run_seed",
    "write_known_failures",
]

# The cursor rule checked in every seed, as in the test suite: a lane's cursor
# moving over a block no read covered raises, and the seed counts it as raised.
_lane.CHECK_CURSOR_RULE = True

SENTINEL = 2**256 - 1
OTHER_CONTRACT = "0x" + "5a" * 20
# The Unix time virtual time 0 stands for (a Retry-After date is read against it).
EPOCH = 1_750_000_000.0
STEPS = 20
# Virtual seconds the end waits for every watcher to reach the sentinel.
FINAL_WAIT = 60.0
MAX_WATCHERS = 7
_END = 1 << 40

# Faults thrown at a step, with their weights. Every fault README says the
# stream survives is here, or a per-seed quirk of the node (see _Sim.__init__).
FAULTS: dict[str, float] = {
    "lost-filter": 6,  # "filter not found" (or Nethermind's, ganache's words)
    "null-filter": 3,  # hardhat answers null for a filter it forgot
    "expired-filter": 3,  # "filter has expired"
    "lost-answer": 8,  # the node acts, the answer never arrives (timeout or connection closed)
    "http-5xx": 5,  # 500, 502, 503
    "http-429": 5,  # with Retry-After in seconds, as a date, or none
    "garbage": 4,  # 200 with a body that is not JSON, or an HTML page
    "lag": 8,  # head answers k blocks behind for m answers (another backend)
    "ahead": 5,  # head answers k blocks ahead for m answers, made-up headers
    "spike": 3,  # one head answer 1,000+ blocks ahead
    "null-header": 4,  # eth_getBlockByNumber answers null
    "null-logs": 3,  # eth_getLogs answers null
    "reorg": 10,  # depth 1-3, a new branch of the same length or longer
    "deep-reorg": 3,  # depth 4-20
    "restart": 1,  # the chain replaced (a dev node restarted), same chain id
    "foreign": 4,  # another contract's log in a filter or eth_getLogs answer
    "beyond": 3,  # a log of a block no head has shown, in a filter answer
    "slow": 2,  # the network slows down for a while
    "hook": 8,  # a reorg, restart or lag right after a chosen request (see _hook)
    "held-then-reorg": 3,  # a log above a lagging head, whose block a reorg then replaces
    "join-ahead": 3,  # a confirmations=0 watcher with from_block joins while a backend is a block ahead
    # Never thrown at a step: around each after= resumption (see _around_resume).
    "after-check": 0,
}
_KINDS = ("attempted", "attempted", "status", "nexus", "nexus-attempted")


@dataclasses.dataclass
class _Watcher:
    label: str
    kind: str
    task: str | None
    from_block: int | None
    after: object
    confirmations: int
    poll_interval: float
    leave: str  # "stay", "break", "cancel", "timeout"
    leave_after: int
    started_at: float
    previous: _Watcher | None = None
    events: list[Any] = dataclasses.field(default_factory=list)
    yielded_at: list[float] = dataclasses.field(default_factory=list)
    # The head a from_block=None watcher's range starts above: the node's
    # head or the stream's when it started, whichever is higher; for the
    # first watcher of a stream, the stream's first head (see _checkpoint).
    start_head: int | None = None
    waiting_first_head: bool = False
    ended_at: float | None = None
    at_end: bool = False
    resumed: bool = False
    started: bool = False
    error: str | None = None
    job: asyncio.Task[None] | None = None

    def wants(self, raw: RawLog) -> bool:
        if str(raw["address"]).lower() != NEXUS.lower() or not raw.get("topics"):
            return False
        topic = str(raw["topics"][0]).lower()
        if self.kind == "nexus":
            return any(spec.topic0 == topic for spec in EVENTS.values())
        name = "TaskStatusChanged" if self.kind == "status" else "Attempted"
        spec = EVENTS[name]
        if topic != spec.topic0:
            return False
        return self.kind == "nexus-attempted" or spec.scope_hex(raw, "task") == str(self.task)[2:].lower()

    def describe(self) -> str:
        start = (
            f"after={self.after!r:.40}"
            if self.after is not None
            else f"from_block={self.from_block}"
            if self.from_block is not None
            else f"from_block=None (above {self.start_head})"
        )
        scope = f"({self.task[:10]})" if self.task else ""
        return (
            f"{self.label} {self.kind}{scope} {start} confirmations={self.confirmations} "
            f"poll={self.poll_interval} leave={self.leave}/{self.leave_after} started t={self.started_at:.2f}"
        )


@dataclasses.dataclass
class SeedResult:
    """What one seed found (picklable: it crosses process boundaries in ``make faults``)."""

    seed: int
    watchers: int
    requests: int
    lost: int
    repeated: int
    out_of_order: int
    foreign: int
    unnamed: int
    errors: int
    leaked: int
    problems: list[str]
    settings: str
    digest: str
    faults: list[str]
    virtual_seconds: float

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.repeated
            or self.out_of_order
            or self.foreign
            or self.unnamed
            or self.errors
            or self.leaked
        )

    def summary(self, limit: int = 12) -> str:
        head = (
            f"seed {self.seed} ({self.settings}): {self.watchers} watchers, {self.requests} requests, "
            f"lost {self.lost}, repeated {self.repeated}, out of order {self.out_of_order}, "
            f"foreign {self.foreign}, unnamed {self.unnamed}, raised {self.errors}, leaked {self.leaked}"
        )
        lines = [head, *self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more")
        lines.append(f"replay: {replay_command(self.seed)}")
        return "\n    ".join(lines)


def replay_command(seed: int) -> str:
    return f".venv/bin/python -m tests.sim --seed {seed} -v"


# The seeds of the in-suite run (tests/test_sim.py) that fail on today's
# stream: known holes, for the stream's engineers to work through.
KNOWN_FAILURES_FILE = Path(__file__).with_name("known_failures.txt")


def known_failures(path: Path = KNOWN_FAILURES_FILE) -> set[int]:
    if not path.exists():
        return set()
    words = (line.split("#", 1)[0].split() for line in path.read_text().splitlines())
    return {int(word) for line in words for word in line}


def write_known_failures(failed: Iterable[int], seeds: range) -> None:
    listed = sorted(failed)
    lines = [
        f"# Seeds of {seeds.start}..{seeds.stop - 1} that fail on the current stream (known holes);",
        "# tests/test_sim.py fails on any other failing seed. Regenerate with",
        f"#   .venv/bin/python -m tests.sim --from {seeds.start} --seeds {len(seeds)} --write-known",
        f"# {len(listed)} seeds",
        *(" ".join(str(seed) for seed in listed[i : i + 20]) for i in range(0, len(listed), 20)),
    ]
    KNOWN_FAILURES_FILE.write_text("\n".join(lines) + "\n")


class _Warnings(logging.Handler):
    """Collects the stream's WARNING lines (the oracle looks for orphans named in them)."""

    def __init__(self, clock: Callable[[], float], echo: bool) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self._clock = clock
        self._echo = echo

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.lines.append(message)
        if self._echo:
            print(f"  t={self._clock():9.3f} {record.levelname:7} {message}")


@functools.lru_cache(maxsize=4096)
def _encoded(event: str, *values: Any) -> tuple[list[str], str]:
    return encode_event(event, *values)


class _Sim:
    def __init__(self, seed: int, steps: int, echo: bool, faults: frozenset[str]) -> None:
        self.seed = seed
        self.faults = faults
        self.steps = steps
        self.echo = echo
        self.rng = random.Random(f"schedule {seed}")
        self.loop = asyncio.get_running_loop()
        assert isinstance(self.loop, VirtualClockLoop)
        rng = self.rng
        lost_words = rng.choice(
            [
                (-32000, "filter not found"),
                (-32700, "filter not found"),  # ganache
                (-32000, "Filter with id: '0x1' does not exist."),  # Nethermind
                (-32000, "filter has expired"),
            ]
        )
        knobs: dict[str, Any] = {
            "url": f"http://127.0.0.1:8545/sim-{seed}",
            "filters_supported": rng.random() >= 0.2,
            "batch_supported": rng.random() >= 0.1,
            "filter_lost_code": lost_words[0],
            "filter_lost_message": lost_words[1],
            "null_for_unknown_filter": rng.random() < 0.25,
            "report_removed": rng.random() < 0.5,
            "orphans_by_hash": rng.random() < 0.8,
            "reverse_answers": rng.random() < 0.2,
            "filter_history": rng.random() < 0.2,
            "get_logs_overreach": rng.random() < 0.15,
        }
        if rng.random() < 0.25:
            knobs["max_range"] = rng.choice([2, 3, 5, 10, 50])
            knobs["range_error"] = rng.choice(
                ["block range too large", "max is {limit} blocks", "query exceeds max block range {limit}"]
            )
        if rng.random() < 0.2 and not knobs["get_logs_overreach"]:
            # (Not with logs beyond the range: the fake would count those against the cap.)
            # Above the densest block (20 logs, or the sentinel block's 6): a
            # provider cannot split one block, and real caps are thousands.
            knobs["max_results"] = rng.choice([21, 25, 40])
        self.node = SimNode(random.Random(f"network {seed}"), self.loop.time, **knobs)
        self.node.orphan_logs_unknown = self.node.orphans_by_hash and rng.random() < 0.3
        self.node.echo = echo
        self.jitter = random.Random(f"jitter {seed}")
        self.settings = ", ".join(
            name
            for name, on in (
                ("no filters", not self.node.filters_supported),
                ("no batches", not self.node.batch_supported),
                ("null for lost filters", self.node.null_for_unknown_filter),
                ("removed logs", self.node.report_removed),
                ("no side blocks", not self.node.orphans_by_hash),
                ("side block logs unknown", self.node.orphan_logs_unknown),
                ("reversed answers", self.node.reverse_answers),
                ("filters with history", self.node.filter_history),
                ("logs beyond range", self.node.get_logs_overreach),
                (f"range cap {self.node.max_range}", self.node.max_range is not None),
                (f"result cap {self.node.max_results}", self.node.max_results is not None),
            )
            if on
        )
        self.tasks = ["0x" + rng.randbytes(20).hex() for _ in range(3)]
        # Few distinct payloads: logs are told apart by block hash and index,
        # and eth-abi encoding is the costliest part of mining (cached below).
        self.providers = ["0x" + rng.randbytes(20).hex() for _ in range(3)]
        self.watchers: list[_Watcher] = []
        self.reorgs: list[tuple[float, int]] = []  # (virtual time, depth); a restart is depth 10**9
        self.later: list[asyncio.TimerHandle] = []
        self.calm = False
        self.warnings = _Warnings(self.loop.time, echo)
        # The multi-endpoint family (tests/sim/endpoints.py): drawn last, so the
        # schedule of every other seed stays what it was.
        self.fronts: list[SimFront] = make_fronts(self.node, seed, rng) if is_endpoint_seed(seed) else []
        for front in self.fronts:
            front.answered = self._answered
        if self.fronts:
            self.settings = ", ".join(
                filter(None, [self.settings, "endpoints " + "/".join(f.role for f in self.fronts)])
            )

    # --- the chain ---

    def _queue_event(self) -> None:
        rng = self.rng
        task = rng.choice(self.tasks)
        if rng.random() < 0.25:
            self.node.add_raw(*_encoded("TaskStatusChanged", task, rng.randrange(6)))
        else:
            self.node.add_raw(*_encoded("Attempted", task, rng.choice(self.providers), rng.randrange(1, 40)))

    def _mine(self, blocks: int | None = None) -> None:
        rng = self.rng
        for _ in range(blocks if blocks is not None else rng.choice([1, 1, 1, 2, 3])):
            count = rng.choice([0, 0, 1, 1, 2, 3]) if rng.random() > 0.04 else rng.randint(8, 20)
            for _ in range(count):
                self._queue_event()
            self.node.mine()

    def _reorg(self, depth: int) -> None:
        depth = min(depth, self.node.head - 1)
        if depth < 1:
            return
        rng = self.rng
        length = depth + rng.choice([0, 0, 0, 1, 2])
        logs: dict[int, list[tuple[Any, ...]]] = {}
        for offset in range(length):
            for _ in range(rng.choice([0, 1, 1, 2])):
                task = rng.choice(self.tasks)
                logs.setdefault(offset, []).append(
                    ("Attempted", task, rng.choice(self.providers), rng.randrange(1, 40))
                )
        self.node.reorg(depth, logs, length=length)
        self.node.note(f"reorg depth {depth}, new branch of {length} to {self.node.head}")
        self.reorgs.append((self.loop.time(), depth))

    def _restart(self) -> None:
        old = self.node.head
        self.node.restart()
        self.reorgs.append((self.loop.time(), 10**9))
        # The new chain is mined back near the old height at once, so that
        # watchers' ranges have events on it.
        self._mine(max(1, old - self.rng.randint(0, 3)))
        self.node.note(f"chain replaced at {old}, new chain mined to {self.node.head}")

    # --- faults ---

    def _answered(self) -> bool:
        hubs = active_hubs()
        return bool(hubs) and all(hub.client.ever_answered for hub in hubs)

    def _fault(self) -> None:
        rng, node = self.rng, self.node
        if self.fronts and rng.random() < 0.5:
            self._endpoint_fault()
            return
        kinds = [kind for kind in FAULTS if kind in self.faults and FAULTS[kind] > 0]
        if not kinds:
            return
        kind = rng.choices(kinds, weights=[FAULTS[kind] for kind in kinds])[0]
        if kind in ("lost-answer", "http-5xx", "http-429", "garbage") and not self._answered():
            # An endpoint that has never answered is given a few seconds before it is taken for
            # a wrong URL (README); the simulation is about what comes after.
            return
        node.note(kind)
        if kind in ("lost-filter", "expired-filter"):
            node.forget_filters()
        elif kind == "null-filter":
            node.null_for_unknown_filter = True
            node.forget_filters()
        elif kind == "lost-answer":
            timeout = rng.random() < 0.5

            def lost(request: httpx.Request) -> httpx.Response:
                node.served_and_lost(request)
                # Decided when it fires: the request may be a new stream's first, and a first
                # request that times out is taken for a wrong URL (README), not retried.
                if timeout and self._answered():
                    raise httpx.ReadTimeout("the answer never arrived", request=request)
                raise httpx.RemoteProtocolError("peer closed connection without a response", request=request)

            node.fail_next(lost)
        elif kind == "http-5xx":
            status = rng.choice([500, 502, 503])
            if rng.random() < 0.3:
                node.fail_next(http_response(status, headers={"Retry-After": str(rng.choice([0, 1, 3]))}))
            else:
                node.fail_next(status=status, times=rng.choice([1, 1, 2]))
        elif kind == "http-429":
            how = rng.choice(["seconds", "date", "none"])
            wait = rng.choice([0, 1, 2, 5])
            headers = (
                {"Retry-After": str(wait)}
                if how == "seconds"
                else {"Retry-After": email.utils.formatdate(EPOCH + self.loop.time() + wait, usegmt=True)}
                if how == "date"
                else None
            )
            node.fail_next(http_response(429, headers=headers))
        elif kind == "garbage":
            bodies = [
                b"\x00\x01 not json",
                b'{"jsonrpc": "2.0", "id": 1, "res',
                b"<html><body>502</body></html>",
            ]
            body = rng.choice(bodies)
            node.fail_next(lambda _request: httpx.Response(200, content=body))
        elif kind == "lag":
            node.lag_head([rng.randint(1, 3)] * rng.randint(1, 4))
        elif kind == "ahead":
            node.lag_head([-rng.randint(1, 2)] * rng.randint(1, 3))
        elif kind == "spike":
            node.spike_head(rng.choice([1_000, 5_000, 10**6]))
        elif kind == "null-header":
            node.null_headers += rng.randint(1, 3)
        elif kind == "null-logs":
            node.null_get_logs += 1
        elif kind == "reorg":
            self._reorg(rng.randint(1, 3))
        elif kind == "deep-reorg":
            self._reorg(rng.randint(4, 20))
        elif kind == "restart":
            self._restart()
        elif kind == "foreign":
            self._foreign()
        elif kind == "beyond":
            block = node.head + rng.randint(1, 5)
            node.inject_filter_log(
                raw_log(
                    "Attempted",
                    rng.choice(self.tasks),
                    "0x" + rng.randbytes(20).hex(),
                    0,
                    block=block,
                    log_index=rng.randrange(3),
                    block_hash="0x" + rng.randbytes(32).hex(),
                    tx_hash="0x" + rng.randbytes(32).hex(),
                )
            )
        elif kind == "slow":
            # Slow, not pathological: the teardown's 2 s time box must fit an uninstall.
            node.latency = (0.1, 0.6)
            self._later(rng.uniform(2, 20), lambda: setattr(node, "latency", (0.001, 0.05)))
        elif kind == "hook":
            self._hook()
        elif kind == "join-ahead":
            node.lag_head([-1] * rng.randint(1, 3))
            if self._active() < MAX_WATCHERS:
                self._start(from_block=max(0, node.head - rng.randint(0, 5)), confirmations=0)
        else:  # held-then-reorg: the lagging head hides the new block, a reorg then replaces it
            node.lag_head([1] * rng.randint(2, 4))
            self._mine(1)
            self._later(rng.uniform(0.2, 3.0), lambda: self._reorg(1))

    def _endpoint_fault(self) -> None:
        kinds = [kind for kind in ENDPOINT_FAULTS if kind in self.faults]
        if not kinds:
            return
        kind = self.rng.choices(kinds, weights=[ENDPOINT_FAULTS[kind] for kind in kinds])[0]
        self.node.note(throw(kind, self.fronts, self.rng, self._later))

    def _foreign(self) -> None:
        rng, node = self.rng, self.node
        block = node.blocks[-1]
        raw = raw_log(
            "Attempted",
            rng.choice(self.tasks),
            "0x" + rng.randbytes(20).hex(),
            0,
            block=block.number,
            log_index=100 + rng.randrange(50),
            address=OTHER_CONTRACT,
            block_hash=block.hash,
            tx_hash="0x" + rng.randbytes(32).hex(),
        )
        if rng.random() < 0.5:
            node.inject_filter_log(raw)
        else:
            node.get_logs_injected.append(raw)

    def _hook(self) -> None:
        """A chain change right after a chosen request: between history chunks, as a filter is installed."""
        rng, node = self.rng, self.node
        where = rng.choice(["eth_getLogs", "eth_getLogs", "eth_newFilter", "eth_getFilterChanges"])

        def on(items: list[dict[str, Any]], _batch: bool) -> bool:
            return any(item.get("method") == where for item in items)

        what = rng.choice(["reorg", "reorg", "deep-reorg", "restart", "lag"])
        action: Callable[[], None]
        if what == "reorg":
            depth = rng.randint(1, 3)
            action = lambda: self._reorg(depth)  # noqa: E731
        elif what == "deep-reorg":
            depth = rng.randint(4, 20)
            action = lambda: self._reorg(depth)  # noqa: E731
        elif what == "restart":
            action = self._restart
        else:
            # Issue 16: the node at 8, head answers 6, 6, 6, 7.
            action = lambda: node.lag_head([2, 2, 2, 1])  # noqa: E731
        node.hooks.append((on, action, f"{what} after {where}"))

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        def run() -> None:
            if not self.calm:
                action()

        self.later.append(self.loop.call_later(delay, run))

    # --- watchers ---

    def _start(
        self,
        like: _Watcher | None = None,
        from_block: int | None = None,
        after: object = None,
        confirmations: int | None = None,
    ) -> None:
        rng = self.rng
        if like is None:
            kind = rng.choice(_KINDS)
            task = rng.choice(self.tasks) if kind in ("attempted", "status") else None
            if confirmations is None:
                confirmations = rng.choice([0, 0, 0, 1, 2, 4])
            poll = rng.choice([1.0, 2.0, 2.0, 3.0])
            which = rng.choice(["none", "none", "past", "past", "zero", "future"])
            if from_block is not None:
                pass  # the caller chose
            elif which == "past":
                from_block = rng.randint(0, self.node.head)
            elif which == "zero":
                from_block = 0
            elif which == "future":
                from_block = self.node.head + rng.randint(1, 4)
        else:
            kind, task, confirmations, poll = like.kind, like.task, like.confirmations, like.poll_interval
        w = _Watcher(
            label=f"w{len(self.watchers)}",
            kind=kind,
            task=task,
            from_block=from_block,
            after=after,
            confirmations=confirmations,
            poll_interval=poll,
            leave=rng.choice(["stay", "stay", "break", "cancel", "timeout"]),
            leave_after=rng.randint(1, 15),
            started_at=self.loop.time(),
            previous=like if after is not None else None,
        )
        options: dict[str, Any] = {
            "from_block": from_block,
            "after": after,
            "poll_interval": poll,
            "confirmations": confirmations,
        }
        gen: AsyncGenerator[Any, None]
        if kind == "attempted":
            gen = watch_attempted(str(task), **options)
        elif kind == "status":
            gen = watch_task_status_changed(str(task), **options)
        elif kind == "nexus":
            gen = watch_nexus(**options)
        else:
            gen = watch_nexus("Attempted", **options)
        if after is None and from_block is None:
            heads = [hub.head for hub in active_hubs() if hub.head is not None]
            w.start_head = max([self.node.head, *heads])
            w.waiting_first_head = not heads
        w.job = self.loop.create_task(self._consume(w, gen), name=f"sim {w.label}")
        self.watchers.append(w)
        self.node.note(f"start {w.describe()}")

    async def _consume(self, w: _Watcher, gen: AsyncGenerator[Any, None]) -> None:
        w.started = True
        try:
            async with contextlib.aclosing(gen):
                while True:
                    if w.leave == "timeout" and len(w.events) >= w.leave_after:
                        try:
                            event = await asyncio.wait_for(gen.__anext__(), self.rng.uniform(0.5, 6.0))
                        except asyncio.TimeoutError:
                            return
                    else:
                        event = await gen.__anext__()
                    w.events.append(event)
                    w.yielded_at.append(self.loop.time())
                    if w.leave == "break" and len(w.events) >= w.leave_after:
                        return
        except StopAsyncIteration:
            w.error = "the watcher ended by itself"
        except Exception as exc:
            w.error = f"{type(exc).__name__}: {exc}"
        finally:
            w.ended_at = self.loop.time()

    def _resume(self) -> None:
        """Start a watcher where one that left stopped: from the block after, or after= its last event."""
        rng = self.rng
        for w in list(self.watchers):
            if w.ended_at is None or not w.events or w.resumed or w.error is not None:
                continue
            w.resumed = True
            if rng.random() >= 0.6 or self._active() >= MAX_WATCHERS:
                continue
            last = w.events[-1]
            how = rng.random()
            canonical = (
                self.node.blocks[last.block_number].hash if last.block_number <= self.node.head else None
            )
            if how < 0.25:
                self._start(like=w, from_block=last.block_number + 1)
            elif how < 0.4 and canonical == str(last.block_hash).lower():
                # A bare pair trusts its block to be the one it was: only while it is.
                self._start(like=w, after=(last.block_number, last.log_index))
            else:
                after: object = last if rng.random() < 0.5 else EventPosition.parse(str(last.position))
                self._around_resume(last.block_number)
                self._start(like=w, after=after)

    def _around_resume(self, block: int) -> None:
        """Issue 16's faults around an after= check: a lagging backend, a reorg after the check."""
        rng, node = self.rng, self.node
        if "after-check" not in self.faults:
            return
        roll = rng.random()
        number = hex(block)
        if roll < 0.15:
            node.null_blocks.add(number)  # a backend behind the saved block answers null for it
            node.note(f"null header for block {block} (the after= check)")
        elif roll < 0.3:
            depth = rng.randint(1, 4) if rng.random() < 0.7 else max(1, node.head - block + 1)

            def check(items: list[dict[str, Any]], batch: bool) -> bool:
                return (
                    not batch
                    and len(items) == 1
                    and items[0].get("method") == "eth_getBlockByNumber"
                    and (items[0].get("params") or [None])[0] == number
                )

            node.hooks.append(
                (check, lambda: self._reorg(depth), f"reorg depth {depth} after the hash check")
            )

    def _active(self) -> int:
        return sum(1 for w in self.watchers if w.ended_at is None)

    def _cancel_one(self) -> None:
        running = [w for w in self.watchers if w.ended_at is None and w.leave == "cancel" and w.job]
        if running:
            w = self.rng.choice(running)
            assert w.job is not None
            w.job.cancel()
            self.node.note(f"cancel {w.label}")

    def _checkpoint(self) -> None:
        """The first watcher of a stream starts above the stream's first head, read after it started."""
        heads = [hub.head for hub in active_hubs() if hub.head is not None]
        for w in self.watchers:
            if w.waiting_first_head and heads:
                w.waiting_first_head = False
                w.start_head = max([w.start_head or 0, *heads])

    # --- the run ---

    async def run(self) -> None:
        rng, node = self.rng, self.node
        self._mine(rng.choice([2, 5, 10, 25, 40]))
        for _ in range(rng.randint(1, 3)):
            self._start()
        for _ in range(self.steps):
            await asyncio.sleep(rng.uniform(0.2, 3.0))
            self._checkpoint()
            if rng.random() < 0.6:
                self._mine()
            if rng.random() < 0.5:
                self._fault()
            if rng.random() < 0.12 and self._active() < MAX_WATCHERS:
                if rng.random() < 0.3:
                    self._fault()  # a watcher joining just as something goes wrong
                self._start()
            if rng.random() < 0.05:
                self._cancel_one()
            self._resume()
        # The end: no more faults, a sentinel per scope, blocks on top for every depth.
        await asyncio.sleep(rng.uniform(0.1, 2.0))
        self._checkpoint()
        self.calm = True
        for handle in self.later:
            handle.cancel()
        node.calm()
        for front in self.fronts:
            front.calm()
        node.latency = (0.001, 0.05)
        for task in self.tasks:
            node.add_log("Attempted", task, "0x" + "00" * 20, SENTINEL)
            node.add_log("TaskStatusChanged", task, 5)
        node.mine()
        self.sentinel = node.head
        node.mine(5)
        node.note(f"sentinel block {self.sentinel}")
        deadline = self.loop.time() + FINAL_WAIT
        while self.loop.time() < deadline and not all(self._finished(w) for w in self.watchers):
            await asyncio.sleep(0.5)
            self._checkpoint()
        for w in self.watchers:
            if w.ended_at is None and w.job is not None:
                w.at_end = True
                w.job.cancel()
        for w in self.watchers:
            if w.job is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await w.job
        # The stream's teardown (uninstalling its filter) takes a moment of its own.
        deadline = self.loop.time() + 30.0
        # Polled: on virtual time a poll costs nothing, and there is no event to wait on.
        while self.loop.time() < deadline and self._stream_tasks():  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    def _stream_tasks(self) -> list[asyncio.Task[Any]]:
        me = asyncio.current_task()
        return [task for task in asyncio.all_tasks() if task is not me]

    def _finished(self, w: _Watcher) -> bool:
        if w.ended_at is not None:
            return True
        wanted = [raw for raw in self.node.blocks[self.sentinel].logs if w.wants(raw)]
        have = {(str(e.block_hash).lower(), int(e.log_index)) for e in w.events}
        return all(key_of(raw) in have for raw in wanted)

    # --- judging ---

    def expectations(self) -> list[Expectation]:
        chains: dict[str, list[_Watcher]] = {}
        for w in self.watchers:  # in start order: a resumption comes after what it resumed
            root = w
            while root.previous is not None:
                root = root.previous
            chains.setdefault(root.label, []).append(w)
        canonical_positions = {key_of(raw): order_of(raw) for raw in self.node.all_logs()}
        out = []
        for chain in chains.values():
            first, last = chain[0], chain[-1]
            if not any(w.started for w in chain):
                continue  # cancelled before it ever ran: it asked for nothing
            yielded = [Yielded.of(e) for w in chain for e in w.events]
            if first.after is not None:
                position = first.after
                start: tuple[int, int] = (
                    (int(position[0]), int(position[1]))
                    if isinstance(position, tuple)
                    else (int(getattr(position, "block_number")), int(getattr(position, "log_index")))  # noqa: B009
                )
            elif first.from_block is not None:
                start = (first.from_block - 1, _END)
            else:
                start = (first.start_head if first.start_head is not None else self.node.head, _END)
            if last.at_end:
                end = (self.sentinel, _END)
            else:
                end = max(
                    (canonical_positions[y.key] for y in yielded if y.key in canonical_positions),
                    default=(-1, -1),
                )
            began = first.started_at
            depth = max((d for t, d in self.reorgs if t >= began), default=0)
            restarted = any(d >= 10**9 for t, d in self.reorgs if t >= began)
            must_name: set[tuple[str, int]] = set()
            if last.at_end:
                must_name.update(Yielded.of(e).key for e in last.events)
            for w, nxt in itertools.pairwise(chain):
                # The next one's after= check names what left the chain before it started.
                for e in w.events:
                    gone = self.node.orphaned_at.get(str(e.block_hash).lower())
                    if gone is not None and gone <= nxt.started_at and last.at_end:
                        must_name.add(Yielded.of(e).key)
            label = "+".join(w.label for w in chain) + (" (after=)" if len(chain) > 1 else "")
            out.append(
                Expectation(
                    label=f"{label} [{first.describe()}; {len(yielded)} yielded, "
                    f"{'ran to the end' if last.at_end else f'left at t={last.ended_at}'}]",
                    wants=first.wants,
                    start_after=start,
                    end=end,
                    yielded=yielded,
                    # A resumption follows a reorg below its position from the fork,
                    # which may lie below the first watcher's from_block (it cannot know it).
                    floor=first.from_block
                    if first.from_block is not None and not restarted and not (len(chain) > 1 and depth > 0)
                    else None,
                    exposed=first.confirmations == 0 or depth > first.confirmations,
                    must_name=must_name,
                    error=next((w.error for w in chain if w.error is not None), None),
                )
            )
        return out

    def leaked(self) -> list[str]:
        # A balancer that sent the stream's eth_uninstallFilter to a backend
        # that never had the filter: the stream asked, the endpoint lost it.
        # The same for one that refused every request (down, 429, 503) when asked.
        misrouted = {
            fid for front in self.fronts for fid in front.misrouted_uninstalls | front.refused_uninstalls
        }
        problems = [
            f"filter {fid} left installed on the node"
            for fid in sorted(self.node.filters)
            if fid not in self.node.lost_filters and fid not in misrouted
        ]
        problems += [f"task left running: {task.get_name()}" for task in self._stream_tasks()]
        return problems


@contextlib.contextmanager
def _serving(fronts: list[SimFront]) -> Iterator[None]:
    """The fronts at their URLs, set as the chain's endpoints in order of preference."""
    if not fronts:
        yield
        return
    for front in fronts:
        _rpc.FAKE_TRANSPORTS[front.url] = front
    ChainConfig.set_rpc([front.url for front in fronts])
    try:
        yield
    finally:
        for front in fronts:
            _rpc.FAKE_TRANSPORTS.pop(front.url, None)


@contextlib.contextmanager
def _deterministic(loop: asyncio.AbstractEventLoop, jitter: random.Random) -> Iterator[None]:
    """Point the stream's wall clock and its global-random jitter at the simulation's."""
    backoff_init = _faults.Backoff.__init__
    retrier_init = _faults.Retrier.__init__
    default_rng = random.random

    def seeded_backoff(
        self: _faults.Backoff, base: float = 0.25, cap: float = 15.0, rng: Callable[[], float] = default_rng
    ) -> None:
        backoff_init(self, base, cap, jitter.random if rng is default_rng else rng)

    def virtual_retrier(self: _faults.Retrier, answered: Callable[[], bool], url: str, **kwargs: Any) -> None:
        kwargs.setdefault("clock", loop.time)
        retrier_init(self, answered, url, **kwargs)

    # monotonic: the clients time their requests (health()'s latency), on the same virtual clock.
    wall = types.SimpleNamespace(time=lambda: EPOCH + loop.time(), monotonic=loop.time)
    with (
        mock.patch.object(_faults.Backoff, "__init__", seeded_backoff),
        mock.patch.object(_faults.Retrier, "__init__", virtual_retrier),
        mock.patch.object(_rpc, "time", wall),
        mock.patch.object(_endpoints, "time", wall),
    ):
        yield


async def _run(seed: int, steps: int, echo: bool, faults: frozenset[str]) -> SeedResult:
    sim = _Sim(seed, steps, echo, faults)
    logger = logging.getLogger("ogpu.events")
    saved = logger.level, logger.propagate
    logger.addHandler(sim.warnings)
    logger.setLevel(logging.INFO if echo else logging.WARNING)
    logger.propagate = False  # nothing reaches pytest's capture or stderr: a seed logs hundreds
    try:
        with _deterministic(sim.loop, sim.jitter), sim.node, _serving(sim.fronts):
            await sim.run()
            expectations = sim.expectations()
            leaked = sim.leaked()
    finally:
        logger.removeHandler(sim.warnings)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    verdict: Verdict = judge(expectations, sim.node.all_logs(), sim.node.orphaned_logs(), sim.warnings.lines)
    return SeedResult(
        seed=seed,
        watchers=len(sim.watchers),
        requests=len(sim.node.transcript),
        lost=verdict.lost,
        repeated=verdict.repeated,
        out_of_order=verdict.out_of_order,
        foreign=verdict.foreign,
        unnamed=verdict.unnamed,
        errors=verdict.errors,
        leaked=len(leaked),
        problems=verdict.problems + leaked,
        settings=sim.settings or "filters, batches",
        digest=sim.node.digest(),
        faults=[f"t={t:.3f} {what}" for t, what in sim.node.fired],
        virtual_seconds=sim.loop.time(),
    )


def run_seed(
    seed: int, *, steps: int = STEPS, echo: bool = False, faults: Iterable[str] | None = None
) -> SeedResult:
    """Run one seed on a fresh virtual-time loop and judge it.

    ``echo`` prints every fault as it fires and the stream's log, on virtual
    time. ``faults`` limits the kinds thrown (names in ``FAULTS``), to find
    which one a failing seed needs; with none, only the node's per-seed
    quirks remain (the control run that shows the judging is sound).
    """
    known = {**FAULTS, **ENDPOINT_FAULTS}
    kinds = frozenset(known if faults is None else faults)
    unknown = kinds - set(known)
    if unknown:
        raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(known)}")
    return run_virtual(_run(seed, steps, echo, kinds))
