"""``ogpu-events`` as operators run it: what it says on stderr, and when (issue 21).

Each test runs the command in a subprocess, as a user or a service manager
does, against the session's anvil or a small local node.
"""

from __future__ import annotations

import json
from pathlib import Path

from ogpu.events._devnode import Anvil
from tests.anvil_helpers import random_address
from tests.cli_helpers import run_cli
from tests.conftest import NEXUS


def _watch(node: Anvil, task: str, *extra: str) -> list[str]:
    return ["watch", "attempted", task, "--rpc", node.url, "--json", *extra]


def test_a_state_file_whose_block_left_the_chain_warns_without_v(shared_anvil: Anvil, tmp_path: Path) -> None:
    task = random_address()
    start = shared_anvil.block_number() + 1
    for payment in range(3):
        shared_anvil.emit(NEXUS, "Attempted", task, random_address(), payment)
    state = tmp_path / "state.json"
    first = run_cli(
        *_watch(shared_anvil, task, "--state", str(state), "--from-block", str(start), "--count", "1")
    )
    assert first.code == 0, first.stderr
    # The saved block is replaced (as by a reorg the node no longer remembers the old side of).
    record = json.loads(state.read_text())
    number, index, _ = record["position"].split(":")
    record["position"] = f"{number}:{index}:0x{'ee' * 32}"
    state.write_text(json.dumps(record))

    again = run_cli(*_watch(shared_anvil, task, "--state", str(state), "--count", "1"))

    assert again.code == 0, again.stderr
    warnings = [line for line in again.stderr.splitlines() if "WARNING" in line]
    assert warnings, again.stderr
    assert any(f"block {number}" in line for line in warnings), warnings
    # The event the lost block held is printed again, as the WARNING says.
    assert json.loads(again.stdout.splitlines()[0])["block_number"] == int(number)
