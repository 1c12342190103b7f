"""The simulation's oracle: what each watcher yielded, judged against the chain the node ends with.

It is a pure function of plain data (:class:`Expectation` per watcher, the
final canonical logs, the orphaned logs, the WARNING lines), so a test can
feed it doctored results and see it object (``tests/stream/test_simulation.py``): an oracle
that cannot fail proves nothing.

For each watcher (a watcher and its ``after=`` resumptions are one):

* **lost**: a canonical matching log of its range it never yielded. The
  range starts at ``from_block``, just after the ``after=`` position, or
  above the head when it joined; it ends at the sentinel for a watcher still
  running at the end, else at the last canonical log it yielded;
* **repeated**: a log, by (block hash, log index), yielded twice;
* **out of order**: a yielded log at or before (block number, log index) of
  one yielded earlier. The one exception is README's: at confirmations=0 (or
  below a reorg deeper than its confirmations), logs that left the chain may
  come before the new branch's, so an orphan yielded earlier does not count;
* **foreign**: a yielded log that is not a matching canonical log (another
  contract's, another scope's, one made up, a different transaction under a
  canonical identity), one below ``from_block``, or an orphan yielded by a
  watcher that no reorg deeper than its confirmations ever exposed;
* **unnamed**: an orphan in ``must_name`` (yielded by a watcher still
  running at the end, or gone before an ``after=`` resumption's check) that
  no WARNING names (``block B index I tx T``, or the ``after=`` check's
  ``block B index I and any before it``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence

from ogpu.events._codec.abi import RawLog

__all__ = ["Expectation", "Verdict", "Yielded", "judge", "key_of", "order_of"]

Key = tuple[str, int]
Position = tuple[int, int]


@dataclasses.dataclass(frozen=True)
class Yielded:
    """What a watcher yielded, as the oracle needs it."""

    block_number: int
    log_index: int
    block_hash: str
    transaction_hash: str

    @property
    def key(self) -> Key:
        return self.block_hash.lower(), self.log_index

    @property
    def position(self) -> Position:
        return self.block_number, self.log_index

    @classmethod
    def of(cls, event: object) -> Yielded:
        return cls(
            int(getattr(event, "block_number")),  # noqa: B009 - any Nexus event dataclass
            int(getattr(event, "log_index")),  # noqa: B009
            str(getattr(event, "block_hash")).lower(),  # noqa: B009
            str(getattr(event, "transaction_hash")).lower(),  # noqa: B009
        )


@dataclasses.dataclass
class Expectation:
    """One watcher (or a watcher and its ``after=`` resumptions) and what it owes."""

    label: str
    wants: Callable[[RawLog], bool]
    # Canonical matching logs strictly after this position and at or before
    # ``end`` are owed.
    start_after: Position
    end: Position
    yielded: list[Yielded]
    # Below this block a canonical log is foreign (from_block=N); None: no floor.
    floor: int | None = None
    # A reorg deeper than its confirmations (or a chain replaced) ran while it did.
    exposed: bool = False
    # Yielded logs that, if they left the chain, a WARNING must name: those
    # of a watcher still running at the end, and those an after= check saw gone.
    must_name: set[Key] = dataclasses.field(default_factory=set)
    error: str | None = None


@dataclasses.dataclass
class Verdict:
    lost: int = 0
    repeated: int = 0
    out_of_order: int = 0
    foreign: int = 0
    unnamed: int = 0
    errors: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost or self.repeated or self.out_of_order or self.foreign or self.unnamed or self.errors
        )


def key_of(raw: RawLog) -> Key:
    return str(raw["blockHash"]).lower(), int(raw["logIndex"], 16)


def order_of(raw: RawLog) -> Position:
    return int(raw["blockNumber"], 16), int(raw["logIndex"], 16)


def judge(
    expectations: Iterable[Expectation],
    canonical: Sequence[RawLog],
    orphaned: Sequence[RawLog],
    warnings: Sequence[str],
) -> Verdict:
    verdict = Verdict()
    on_chain = {key_of(raw): raw for raw in canonical}
    orphans = {key_of(raw): raw for raw in orphaned if key_of(raw) not in on_chain}
    # "block 5 index 2 tx 0x.." (a reorg's WARNING) and "block 5, index 2, tx 0x.." (a removed log's) alike.
    warned = "\n".join(warnings).lower().replace(",", "")
    for exp in expectations:
        _judge_one(exp, canonical, on_chain, orphans, warned, verdict)
    return verdict


def _judge_one(
    exp: Expectation,
    canonical: Sequence[RawLog],
    on_chain: dict[Key, RawLog],
    orphans: dict[Key, RawLog],
    warned: str,
    verdict: Verdict,
) -> None:
    # One line per kind of problem and watcher, the first few cases in it: a
    # reorg can orphan a hundred yielded logs, and a person reads the first.
    found: dict[str, list[str]] = {}

    def problem(what: str) -> None:
        kind, _, case = what.partition(" ")
        found.setdefault(kind, []).append(case)

    if exp.error is not None:
        verdict.errors += 1
        problem(f"raised {exp.error}")
    seen: set[Key] = set()
    for y in exp.yielded:
        if y.key in seen:
            verdict.repeated += 1
            problem(f"repeated block {y.block_number} index {y.log_index}")
        seen.add(y.key)

    owed = [
        raw
        for raw in canonical
        if exp.start_after < order_of(raw) <= exp.end
        and exp.wants(raw)
        and (exp.floor is None or order_of(raw)[0] >= exp.floor)
    ]
    for due in owed:
        if key_of(due) not in seen:
            verdict.lost += 1
            block, index = order_of(due)
            problem(f"lost block {block} index {index}")

    highest: tuple[Position, Yielded] | None = None
    for y in exp.yielded:
        if highest is not None and y.position <= highest[0]:
            verdict.out_of_order += 1
            before = highest[1]
            problem(
                f"out-of-order block {y.block_number} index {y.log_index} after block "
                f"{before.block_number} index {before.log_index}"
            )
        # An orphan yielded before the new branch is README's one exception (when exposed).
        exempt = y.key in orphans and exp.exposed
        if not exempt and (highest is None or y.position > highest[0]):
            highest = (y.position, y)

    for y in exp.yielded:
        raw = on_chain.get(y.key)
        why = None
        if raw is not None:
            if str(raw["transactionHash"]).lower() != y.transaction_hash:
                why = "another transaction under a canonical log's identity"
            elif not exp.wants(raw):
                why = "a canonical log it did not ask for"
            elif exp.floor is not None and y.block_number < exp.floor:
                why = f"below from_block {exp.floor}"
        elif y.key in orphans:
            orphan: RawLog = orphans[y.key]
            if str(orphan["transactionHash"]).lower() != y.transaction_hash or not exp.wants(orphan):
                why = "not the orphaned log of that identity"
            elif not exp.exposed:
                why = "an orphan, though no reorg deeper than its confirmations ran"
            elif y.key in exp.must_name and not _named(y, warned):
                verdict.unnamed += 1
                problem(f"unnamed orphan block {y.block_number} index {y.log_index}")
        else:
            why = "on no chain the node ever had (another contract's, or made up)"
        if why is not None:
            verdict.foreign += 1
            problem(f"foreign block {y.block_number} index {y.log_index}: {why}")
    for kind, cases in found.items():
        shown = "; ".join(cases[:4]) + (f"; and {len(cases) - 4} more" if len(cases) > 4 else "")
        verdict.problems.append(f"{exp.label}: {kind} {len(cases)}: {shown}")


def _named(y: Yielded, warned: str) -> bool:
    if f"block {y.block_number} index {y.log_index} tx {y.transaction_hash}" in warned:
        return True
    # Named by range, where the node would not list an old branch's logs.
    for match in re.finditer(r"every event in blocks (\d+)\.\.(\d+)", warned):
        if int(match[1]) <= y.block_number <= int(match[2]):
            return True
    # The after= check names only the position when the node will not list the old block's logs.
    marker = f"block {y.block_number} index "
    tail = " and any before it in that block"
    start = 0
    while (at := warned.find(marker, start)) >= 0:
        rest = warned[at + len(marker) :]
        digits = rest.split(" ", 1)[0]
        if digits.isdigit() and rest[len(digits) :].startswith(tail) and int(digits) >= y.log_index:
            return True
        start = at + 1
    return False
