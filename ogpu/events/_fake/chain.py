"""The chain behind ``ogpu.events.testing.FakeNode``: blocks, logs and filters in memory.

Nothing here speaks JSON-RPC (``_fakerpc`` does) or touches ``ChainConfig``
(``testing`` does): this is what is on chain and what each filter still owes.
The chain only moves when its owner calls :meth:`FakeChain.mine`,
:meth:`FakeChain.replace_blocks` or :meth:`FakeChain.restart`, so a test
decides exactly what a stream can see between two polls.

Logs are encoded with eth-abi from the vendored ABI, independently of the
hand-written decoder the stream uses, so a log the fake mines checks that
decoder rather than mirroring it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ogpu._errors import InvalidArgumentError
from ogpu.events._codec.abi import RawLog

__all__ = [
    "Block",
    "EncodedLog",
    "FakeChain",
    "Filter",
    "address_matches",
    "fake_hash",
]

# (topics, data, lowercase contract address) of a log waiting for its block.
EncodedLog = tuple[list[str], str, str]


def fake_hash(*parts: object) -> str:
    """A 32-byte hash made up from ``parts``: the same parts, the same hash."""
    return "0x" + hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


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


class FakeChain:
    """Blocks linked by hash, their logs, and the node filters that report them.

    ``report_removed``: geth-like, a reorg makes every filter report the
    replaced blocks' logs again with ``removed: true`` before the new ones;
    anvil-like (False, the default) filters report only the new ones.
    ``orphans_by_hash``: blocks a reorg replaced can still be found by hash
    (geth keeps them).
    """

    def __init__(self, *, nexus: str, start_block: int = 0) -> None:
        self.nexus = nexus
        self.report_removed = False
        self.orphans_by_hash = True
        # Mixed into every block hash: a restarted or reorged chain never
        # reuses a hash of the chain it replaced.
        self._salt = ""
        self._epoch = 0
        self.blocks: list[Block] = []
        for number in range(start_block + 1):
            self._append_block(number)
        self.filters: dict[str, Filter] = {}
        self.created_filters: list[str] = []
        self._filter_ids = 0
        self._txs = 0
        self._pending: list[EncodedLog] = []
        # Blocks (and their logs) that left the chain in a reorg or restart,
        # by hash: what a confirmations=0 watcher may have yielded legitimately.
        self.orphans: dict[str, Block] = {}
        # Called after every change of the chain (mined, reorged, restarted).
        self.on_change: Callable[[], None] | None = None

    @property
    def head(self) -> int:
        """The number of the newest block."""
        return self.blocks[-1].number

    def _append_block(self, number: int) -> Block:
        parent = self.blocks[-1].hash if self.blocks else "0x" + "00" * 32
        # Unsalted hashes stay what they always were for the first chain.
        parts: tuple[object, ...] = (
            ("block", number, parent, self._salt) if self._salt else ("block", number, parent)
        )
        block = Block(number, fake_hash(*parts), parent)
        self.blocks.append(block)
        return block

    def _chain_moved(self) -> None:
        """Called after every change of the chain: tells ``on_change`` (the kit wakes its streams)."""
        if self.on_change is not None:
            self.on_change()

    def add_raw(self, topics: list[str], data: str, address: str | None = None) -> None:
        """Queue a log with any topics and data (one that does not decode, say) for the next block."""
        self._pending.append((topics, data, (address or self.nexus).lower()))

    def mine(self, count: int = 1) -> int:
        """Seal ``count`` blocks (the first takes the queued logs); return the new head."""
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise InvalidArgumentError(f"mine() takes a number of blocks >= 0, got {count!r}")
        for _ in range(count):
            self._seal(self._pending)
            self._pending = []
        self._chain_moved()
        return self.head

    def mine_block(self, logs: Sequence[EncodedLog]) -> Block:
        """Seal one new block holding exactly ``logs`` (queued ones stay queued); return it."""
        block = self._seal(logs)
        self._chain_moved()
        return block

    def _seal(self, queued: Sequence[EncodedLog]) -> Block:
        block = self._append_block(self.head + 1)
        for index, (topics, data, address) in enumerate(queued):
            self._txs += 1
            block.logs.append(
                {
                    "address": address,
                    "topics": list(topics),
                    "data": data,
                    "blockNumber": hex(block.number),
                    "blockHash": block.hash,
                    "transactionHash": fake_hash("tx", self._txs),
                    "transactionIndex": hex(index),
                    "logIndex": hex(index),
                    "removed": False,
                }
            )
        for flt in self.filters.values():
            flt.pending.extend(raw for raw in block.logs if address_matches(flt.address, raw))
        return block

    def replace_blocks(
        self, depth: int, logs_by_offset: Mapping[int, Sequence[EncodedLog]], length: int | None = None
    ) -> list[Block]:
        """Replace the last ``depth`` blocks with ``length`` (default ``depth``) new ones.

        ``logs_by_offset[i]`` are the logs of the i-th new block (0: the one
        right above the fork point). Returns the new blocks. Logs queued with
        :meth:`add_raw` stay queued for the next :meth:`mine`.
        """
        if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= self.head:
            raise InvalidArgumentError(f"cannot reorg {depth!r} blocks of a chain at height {self.head}")
        count = depth if length is None else length
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise InvalidArgumentError(f"a reorg's new branch needs a length >= 0, got {length!r}")
        outside = sorted(set(logs_by_offset) - set(range(count)))
        if outside:
            raise InvalidArgumentError(f"a new branch of {count} blocks has no block at offset {outside}")
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
                    {**raw, "removed": True} for raw in gone if address_matches(flt.address, raw)
                )
        new = [self._seal(logs_by_offset.get(offset, [])) for offset in range(count)]
        self._chain_moved()
        return new

    def restart(self, chain_id: int | None = None, *, same_genesis: bool = False) -> None:
        """Start a new chain from block 0, as a dev node restarted on the same port does.

        Every block of the old chain gets a different hash on the new one
        (block 0 keeps its hash with ``same_genesis``); filters and queued
        logs are forgotten. ``chain_id`` is for the node front (see ``_fakerpc``).
        """
        self._epoch += 1
        genesis = self.blocks[0]
        for block in self.blocks[0 if not same_genesis else 1 :]:
            self.orphans[block.hash] = block
        self._salt = f"restart{self._epoch}"
        self.blocks = [genesis] if same_genesis else []
        if not same_genesis:
            self._append_block(0)
        self.filters.clear()
        self._pending = []
        self._chain_moved()

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


def address_matches(wanted: str | None, raw: RawLog) -> bool:
    return wanted is None or raw["address"].lower() == wanted
