"""Resuming a watcher after an event it yielded before: ``after=``.

A block can hold many Nexus logs, so a block number alone cannot say where
a restarted service left off: ``from_block`` repeats the block's events or
loses the rest of them. ``after=`` names an event's place instead, and the
watcher yields what comes strictly after it in chain order.

Before the watcher joins the stream, the block the position names is checked
against the node by hash (a bare ``(block_number, log_index)`` pair has no
hash and cannot be). If a reorg took that block off the chain, what the user
handled after the point where the chains part is no longer on the chain,
and the new branch from there on has never been seen: the watcher resumes
right after the last block both chains share, found by walking the old
branch back by parent hash (``eth_getBlockByHash``), and a WARNING names what
was lost. A node that no longer knows the old blocks cannot say where the
chains part; then the watcher resumes from the start of the lowest old
block's height, and the WARNING says that too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ogpu._errors import RpcError, RpcResponseError
from ogpu.events._codec.abi import EventSpec
from ogpu.events._codec.position import EventPosition
from ogpu.events._net.faults import Backoff, Retrier
from ogpu.events._net.headers import Header, header_calls, headers_by_number, parse_header
from ogpu.events._net.rpc import JsonRpc
from ogpu.events._stream.chain import WINDOW
from ogpu.events._stream.screen import WatcherMatch

__all__ = ["ResumePoint", "resume_point"]

log = logging.getLogger("ogpu.events")

# Old-branch blocks walked back at most; the stream itself follows no reorg
# deeper than 64 blocks by hash, and a node keeps few side blocks anyway.
_WALK_LIMIT = 128
# Old-branch events named in the WARNING at most.
_NAMED = 10
# Calls for one old block's logs before the WARNING names the position alone.
_NAMING_TRIES = 3
# Blocks below the position a resumed watcher reads again (matched by hash):
# a reorg this deep below the position still reaches it.
_BRANCH_DEPTH = 32
# Checks of the position's block when the chain keeps moving between the check and the branch read.
_BRANCH_TRIES = 3
# Remembered heights asked for at most when the node cannot say where an old branch parted.
_REMEMBERED_ASKED = 128
# How long a node whose head is below the position's block is waited for.
_REACH_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a resumed watcher starts: ``from_block``, minus what ``after`` already covered."""

    from_block: int
    after: EventPosition | None
    # Hashes of the position's block and the blocks below it on its branch,
    # by height, as the node showed them when the position was checked.
    branch: Mapping[int, str] = field(default_factory=dict)
    # The WARNING that the branch changed after the check was logged.
    warned: bool = False

    def covers(self, event: Any) -> bool:
        """Whether ``event`` is at or before the position resumed after (so it was handled).

        An event of a block with another hash than the position's branch had
        at that height is on a branch the user never saw: never covered. So a
        reorg below the position, found at any time, brings its new branch.
        """
        after = self.after
        known = self.branch.get(event.block_number)
        if after is None:
            # The position left the chain: what is covered is the common part
            # below the fork, as headers showed it then (handled, still on the chain).
            return known is not None and str(event.block_hash).lower() == known
        if event.block_number > after.block_number:
            return False
        if known is not None and str(event.block_hash).lower() != known:
            return False
        if event.block_number < after.block_number:
            return True
        if after.block_hash is not None and str(event.block_hash).lower() != after.block_hash:
            return False
        return bool(event.log_index <= after.log_index)

    def left_branch(self, event: Any) -> bool:
        """Whether yielding ``event`` means the position's branch was replaced after the check."""
        after = self.after
        if self.warned or after is None or event.block_number > after.block_number:
            return False
        if event.block_number < after.block_number:
            return True
        # The position's own block: the rest of it is what resuming yields, unless it is another block.
        if after.block_hash is not None and str(event.block_hash).lower() != after.block_hash:
            return True
        return bool(event.log_index <= after.log_index)


async def resume_point(
    client: JsonRpc,
    after: EventPosition,
    specs: Sequence[EventSpec],
    field: str | None,
    scope: str | None,
    nexus: str,
    label: str,
    answered: Callable[[], bool] = lambda: False,
    known_fork: Callable[[str], int | None] = lambda _: None,
    known_branch: Callable[[int, str], Mapping[int, str]] = lambda _number, _hash: {},
    tries: int = _BRANCH_TRIES,
) -> ResumePoint:
    """Check ``after`` against the node and say where the watcher resumes.

    ``answered`` tells whether the endpoint has answered this process before
    (a stream already runs on it): then a fault is retried as the stream
    retries it, not taken for a wrong URL.
    """
    if after.block_hash is None:
        return ResumePoint(after.block_number, after)
    asker = _Asker(client, answered)
    now = await asker.header("eth_getBlockByNumber", hex(after.block_number))
    if now is None:
        # Not there by number: a backend behind that has not got the block
        # yet, or a chain that ended below it. The first is waited for; only
        # a node whose head has reached the height can say the block left.
        now = await _when_reached(asker, after.block_number, label)
    for _ in range(_BRANCH_TRIES):
        if now is None or now.hash != after.block_hash:
            break
        branch = await _branch_below(asker, now)
        if branch is not None:
            return ResumePoint(min(branch), after, branch)
        # The chain moved between the check and the branch read: check again.
        now = await asker.header("eth_getBlockByNumber", hex(after.block_number))
    if now is not None and now.hash == after.block_hash:
        return ResumePoint(after.block_number, after, {now.number: now.hash})

    # The old branch, from the position's block down, while the node still has it.
    old: list[Header] = []
    fork: int | None = None
    fork_header: Header | None = None
    wanted = after.block_hash
    while len(old) < _WALK_LIMIT:
        block = await asker.header("eth_getBlockByHash", wanted)
        if block is None:
            break
        old.append(block)
        if block.number == 0:
            fork = -1
            break
        below = await asker.header("eth_getBlockByNumber", hex(block.number - 1))
        if below is not None and below.hash == block.parent_hash:
            fork = block.number - 1
            fork_header = below
            break
        wanted = block.parent_hash

    # Blocks up to the position that a stream of this process pinned on its branch.
    remembered: dict[int, str] = {}
    if fork is None:
        # The node no longer has the old block; a reorg this process followed
        # may still know where the chains part.
        known = [f for h in (after.block_hash, *(b.hash for b in old)) if (f := known_fork(h)) is not None]
        fork = min(known, default=None)
    if fork is None:
        # Or it pinned the old branch's blocks: the highest of them the node
        # still has at its height is where the chains part.
        position_branch = known_branch(after.block_number, after.block_hash)
        remembered = {n: h for n, h in position_branch.items() if n <= after.block_number}
        fork = max(await _common_from_memory(asker, remembered, after), default=None)
    # The common part below the fork, by hash: a later stream that takes a
    # deep reorg for a replaced chain must not hand its events out again.
    branch = await _branch_below(asker, fork_header) if fork_header is not None else None
    if fork_header is not None and branch is None and tries > 1:
        # The chain moved again below the fork since it was found: look again.
        return await resume_point(
            client, after, specs, field, scope, nexus, label, answered, known_fork, known_branch, tries - 1
        )
    handled = await _handled_on(asker, old, after, specs, field, scope, nexus)
    # Old blocks below the lowest one the node still showed left the chain too,
    # though their events cannot be listed: they are named by range.
    first_old = old[-1].number if old else after.block_number
    if fork is not None and fork + 1 < first_old:
        handled.insert(0, f"every event in blocks {fork + 1}..{first_old - 1}")
    elif fork is None and first_old > 0:
        # Where the chains part is unknown, so is which of them left: every
        # block a reorg the stream would find (WINDOW deep) is named, for the
        # user to check against the chain.
        handled.insert(
            0,
            f"possibly every event in blocks {max(0, first_old - WINDOW)}..{first_old - 1} "
            "(where the chains part is unknown)",
        )
    named = ", ".join(handled[:_NAMED])
    if fork is not None:
        start = fork + 1
        where = f"the chains part after block {fork}: resuming from block {start}"
    else:
        start = old[-1].number if old else after.block_number
        where = (
            f"the node no longer has the old block{' ' + old[-1].hash if old else ''}, so where the chains "
            f"part is unknown: resuming from the start of block {start} (events of the new branch below "
            f"it, if any, are not read; pass from_block= to read further back)"
        )
    log.warning(
        "%s: block %d (%s) that after= names is no longer on the chain; %s. Events handled on the old "
        "branch are no longer on the chain: %s",
        label,
        after.block_number,
        after.block_hash,
        where,
        named,
    )
    # The rest, ten to a line: every handled event that left the chain is named.
    for at in range(_NAMED, len(handled), _NAMED):
        log.warning("%s: also handled on the old branch: %s", label, ", ".join(handled[at : at + _NAMED]))
    # Or the remembered blocks: an event of one of them was handled (it is at
    # or below the position, on its branch), wherever the chains part.
    covered = branch or remembered
    # History is read from the lowest of them (at most _BRANCH_DEPTH below
    # the start): a reorg below the fork after this check, which no stream
    # may see, then brings its new branch (other hashes) instead of passing under it.
    reread = [n for n in covered if start - _BRANCH_DEPTH <= n < start]
    return ResumePoint(min([start, *reread]), None, covered)


async def _common_from_memory(
    asker: _Asker, branch: Mapping[int, str], after: EventPosition
) -> dict[int, str]:
    """The blocks below ``after`` the node still has with the hashes ``branch`` remembers there.

    Blocks are linked by their parents' hashes, so the highest of them is
    where the chains part, and they are the common part a resumed watcher
    must not yield again.
    """
    heights = sorted((n for n in branch if n < after.block_number), reverse=True)[:_REMEMBERED_ASKED]
    if not heights:
        return {}
    try:
        headers = headers_by_number(heights, await asker.client.batch(header_calls(heights)))
    except RpcError:
        return {}
    return {n: branch[n] for n in heights if (h := headers[n]) is not None and h.hash == branch[n]}


async def _handled_on(
    asker: _Asker,
    old: list[Header],
    after: EventPosition,
    specs: Sequence[EventSpec],
    field: str | None,
    scope: str | None,
    nexus: str,
) -> list[str]:
    """The matching events of the old blocks up to ``after``, as the WARNING names them.

    Read by block hash (EIP-234), which a node may refuse for blocks off the
    chain: then the position itself is all that can be named.
    """
    wanted = WatcherMatch(specs, field, scope)
    found: list[str] = []
    for block in reversed(old):
        try:
            # A few tries only: a node that keeps a side block's header may
            # still answer "unknown block" for its logs, for ever.
            logs = await asker.ask(
                "eth_getLogs", {"address": nexus, "blockHash": block.hash}, tries=_NAMING_TRIES
            )
        except RpcError:
            logs = None
        if not isinstance(logs, list):
            # The node will not list them: named by range, every event of the
            # old branch's blocks below the position, then the position's own.
            lowest = min(b.number for b in old)
            below = (
                [f"every event in blocks {lowest}..{after.block_number - 1}"]
                if lowest < after.block_number
                else []
            )
            return [*below, _position_in_words(after)]
        for raw in logs:
            try:
                # Not screened like the stream's reads: a malformed log is passed over.
                index = int(raw["logIndex"], 16)
                if wanted.spec_of(raw) is None:
                    continue
                if block.number == after.block_number and index > after.log_index:
                    continue
                found.append(f"block {block.number} index {index} tx {raw.get('transactionHash')}")
            except (KeyError, IndexError, TypeError, ValueError, AttributeError):
                continue
    return found or [_position_in_words(after)]


async def _branch_below(asker: _Asker, top: Header) -> dict[int, str] | None:
    """``top`` and up to ``_BRANCH_DEPTH`` blocks below it, linked by parent hash, in one batch.

    The resumed watcher reads history from the lowest of them: a reorg below
    the position, before or after it joins, then reaches it (its events are
    not covered, their hashes differ), instead of passing under its live_from.
    ``top`` is asked for again in the same batch: ``None`` when it is not
    there any more (the chain moved since it was read), since the blocks
    below would then be the new branch's, taken for the position's.
    """
    numbers = list(range(top.number, max(-1, top.number - 1 - _BRANCH_DEPTH), -1))
    try:
        answers = await asker.client.batch(header_calls(numbers))
    except RpcError:
        return {top.number: top.hash}  # the position's block alone, as before: history reads from it
    headers = headers_by_number(numbers, answers)
    again = headers.pop(top.number)
    if again is None or again.hash != top.hash:
        return None
    branch = {top.number: top.hash}
    parent = top.parent_hash
    for number, header in sorted(headers.items(), reverse=True):
        if header is None or header.hash != parent:
            break
        branch[number] = header.hash
        parent = header.parent_hash
    return branch


async def _when_reached(asker: _Asker, number: int, label: str) -> Header | None:
    """Block ``number``'s header once the node's head has reached it; ``None`` if it has and lacks it.

    A node whose head stays below for ``_REACH_WAIT`` seconds is judged as it
    is (a chain that ended lower: a restarted development node).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _REACH_WAIT
    backoff = Backoff(base=0.2, cap=2.0)
    told = False
    while True:
        latest = await asker.header("eth_getBlockByNumber", "latest")
        if latest is not None and latest.number >= number:
            return await asker.header("eth_getBlockByNumber", hex(number))
        if loop.time() >= deadline:
            log.warning(
                "%s: the node's head stayed at %s, below block %d that after= names, for %.0f s; "
                "judging the position on the chain it has",
                label,
                None if latest is None else latest.number,
                number,
                _REACH_WAIT,
            )
            return None
        if not told:
            log.info(
                "%s: the node's head (%s) is below block %d that after= names (a backend behind?); "
                "waiting for it",
                label,
                None if latest is None else latest.number,
                number,
            )
            told = True
        await asyncio.sleep(backoff.next_delay())


def _position_in_words(after: EventPosition) -> str:
    return f"block {after.block_number} index {after.log_index} and any before it in that block"


class _Asker:
    """Single calls retried like the stream's own (transient faults, with a WARNING each)."""

    def __init__(self, client: JsonRpc, answered: Callable[[], bool]) -> None:
        self.client = client
        self.retrier = Retrier(lambda: client.ever_answered or answered(), client.masked_url)

    async def ask(self, method: str, *params: Any, tries: int | None = None) -> Any:
        """The answer to one call; transient faults retried (at most ``tries`` calls, if given)."""
        return await self.retrier.run(
            lambda: self.client.call(method, list(params)),
            f"{method} checking the block after= names",
            tries=tries,
        )

    async def header(self, method: str, which: str) -> Header | None:
        try:
            answer = await self.ask(method, which, False)
        except RpcResponseError:
            return None  # "header not found" and the like: the node does not have it
        return parse_header(answer, f"{method}({which})")
