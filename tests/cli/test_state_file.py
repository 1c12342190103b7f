"""``ogpu-events --state FILE`` driven as a service drives it: stopped, killed and restarted.

Every test emits its events to a fresh task address on this module's own
anvil, several to a block, and reads the command's JSON lines back: each
event is known by its transaction hash and log index.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ogpu.events import EventPosition
from ogpu.events._devnode.nodes import Anvil
from tests.support.cli import CLI, env, run_cli
from tests.support.devnodes import random_address
from tests.support.fakenode import NEXUS

# Every test here starts the command in a subprocess.
pytestmark = pytest.mark.nodes


EVENTS = 15


def _emit(node: Anvil, task: str, count: int, per_block: int = 4) -> tuple[int, list[tuple[str, int]]]:
    """``count`` Attempted events of ``task``, ``per_block`` to a block; (first block, their ids in order)."""
    start = node.block_number() + 1
    txs: list[str] = []
    for first in range(0, count, per_block):
        with node.one_block():
            for payment in range(first, min(first + per_block, count)):
                txs.append(node.emit(NEXUS, "Attempted", task, random_address(), payment))
                node.emit(NEXUS, "Attempted", random_address(), random_address(), 0)  # out of scope
    receipts = [node.receipt(tx) for tx in txs]
    ids = [(r["transactionHash"], int(r["logs"][0]["logIndex"], 16)) for r in receipts]
    return start, ids


def _ids(stdout: str) -> list[tuple[str, int]]:
    return [(r["transaction_hash"], r["log_index"]) for r in map(json.loads, stdout.splitlines())]


def _watch(node: Anvil, task: str, state: Path, *extra: str) -> list[str]:
    return ["watch", "attempted", task, "--rpc", node.url, "--json", "--state", str(state), *extra]


def _saved(state: Path) -> EventPosition:
    return EventPosition.parse(json.loads(state.read_text())["position"])


def _position(line: str) -> EventPosition:
    record = json.loads(line)
    return EventPosition(record["block_number"], record["log_index"], record["block_hash"])


def test_three_runs_of_count_4_give_12_events_exactly_once_in_order(chain: Anvil, tmp_path: Path) -> None:
    task = random_address()
    start, ids = _emit(chain, task, EVENTS)
    state = tmp_path / "attempted.state"

    runs = [
        run_cli(*_watch(chain, task, state, "--from-block", str(start), "--count", "4")) for _ in range(3)
    ]

    assert [r.code for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    assert [r.stderr for r in runs] == ["", "", ""]
    assert [_ids(r.stdout) for r in runs] == [ids[0:4], ids[4:8], ids[8:12]]
    assert _saved(state) == _position(runs[-1].stdout.splitlines()[-1])
    assert _saved(state).block_hash == _position(runs[-1].stdout.splitlines()[-1]).block_hash
    assert [p.name for p in tmp_path.iterdir()] == ["attempted.state"]  # no temporary file left


def _interrupted(
    args: list[str], sig: signal.Signals, meanwhile: Callable[[], object] = lambda: None
) -> subprocess.CompletedProcess[str]:
    """The command, stopped by ``sig`` once it has printed its first line and ``meanwhile`` ran."""
    process = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()
    )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(process.stdout, selectors.EVENT_READ)
            assert sel.select(20.0), "no output within 20s"
        first = process.stdout.readline()
        meanwhile()
        process.send_signal(sig)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, first + out, err)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_mid_stream_stops_cleanly_and_the_next_run_gives_the_rest_exactly_once(
    chain: Anvil, tmp_path: Path, sig: signal.Signals
) -> None:
    task = random_address()
    start, ids = _emit(chain, task, 7)
    state = tmp_path / "state.json"
    # More events come while the command runs (the signal may land before or
    # after it prints them), and more after it stopped.
    more: list[tuple[str, int]] = []
    stopped = _interrupted(
        _watch(chain, task, state, "--from-block", str(start), "--poll-interval", "0.05"),
        sig,
        lambda: more.extend(_emit(chain, task, 4)[1]),
    )
    ids += more + _emit(chain, task, 4)[1]

    assert stopped.returncode == (143 if sig is signal.SIGTERM else 130)
    assert stopped.stderr == ""
    printed = _ids(stopped.stdout)
    assert printed and printed == ids[: len(printed)]
    # The last printed event is the last saved one.
    assert _saved(state) == _position(stopped.stdout.splitlines()[-1])
    rest = run_cli(*_watch(chain, task, state, "--count", str(len(ids) - len(printed))))
    assert rest.code == 0, rest.stderr
    assert printed + _ids(rest.stdout) == ids


def test_a_kill_mid_stream_repeats_at_most_one_event_and_loses_none(chain: Anvil, tmp_path: Path) -> None:
    task = random_address()
    start, ids = _emit(chain, task, EVENTS)
    state = tmp_path / "state.json"

    killed = _interrupted(_watch(chain, task, state, "--from-block", str(start)), signal.SIGKILL)

    assert killed.returncode == -signal.SIGKILL
    printed = _ids(killed.stdout)
    assert printed and printed == ids[: len(printed)]
    positions = [_position(line) for line in killed.stdout.splitlines()]
    # Saved: the last printed event, or (killed between printing and saving) the one before it.
    done = positions.index(_saved(state)) + 1 if state.exists() else 0
    assert done >= len(printed) - 1
    rest = run_cli(*_watch(chain, task, state, "--from-block", str(start), "--count", str(EVENTS - done)))
    assert rest.code == 0, rest.stderr
    assert _ids(rest.stdout) == ids[done:]


# --- files that cannot be used: exit 2, one line, nothing printed ---


def _state_for(node: Anvil, tmp_path: Path, *args: str) -> Path:
    """A state file written by a real run of the command ``args`` (which gets one event)."""
    state = tmp_path / "state.json"
    task = random_address()
    start, _ = _emit(node, task, 1)
    real = [a.replace("TASK", task) for a in args]
    result = run_cli(
        *real, "--rpc", node.url, "--state", str(state), "--from-block", str(start), "--count", "1"
    )
    assert result.code == 0, result.stderr
    return state


def _refused(node: Anvil, state: Path, *args: str) -> str:
    result = run_cli(*args, "--rpc", node.url, "--state", str(state), "--count", "1", "--timeout", "5")
    assert result.code == 2, (result.code, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("ogpu-events: error:")
    return lines[0]


@pytest.mark.parametrize(
    ("content", "mentions"),
    [
        ("", "not one ogpu-events wrote"),
        ("{not json", "not one ogpu-events wrote"),
        ("[1, 2]", "not one ogpu-events wrote"),
        ('{"version": 2}', "version 2"),
        ("\udcff", "cannot read"),
    ],
    ids=["empty", "garbled", "a list", "another version", "not utf-8"],
)
def test_an_unreadable_state_file_is_refused(
    chain: Anvil, tmp_path: Path, content: str, mentions: str
) -> None:
    state = tmp_path / "state.json"
    state.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert mentions in _refused(chain, state, "tail")
    assert state.read_bytes() == content.encode("utf-8", "surrogateescape")  # left as it was


def test_a_state_file_with_a_bad_position_is_refused(chain: Anvil, tmp_path: Path) -> None:
    state = _state_for(chain, tmp_path, "tail", "attempted")
    record: dict[str, Any] = json.loads(state.read_text())
    state.write_text(json.dumps({**record, "position": "12:x"}))
    assert "not one ogpu-events wrote" in _refused(chain, state, "tail", "attempted")


def test_a_folder_or_a_missing_folder_is_refused(chain: Anvil, tmp_path: Path) -> None:
    assert "is a folder" in _refused(chain, tmp_path, "tail")
    assert "does not exist" in _refused(chain, tmp_path / "nowhere" / "state.json", "tail")


def test_a_state_file_of_another_chain_is_refused(chain: Anvil, tmp_path: Path) -> None:
    state = _state_for(chain, tmp_path, "tail")
    record = json.loads(state.read_text())
    state.write_text(json.dumps({**record, "chain_id": 200820172034}))
    line = _refused(chain, state, "tail")
    assert "chain 200820172034" in line and "chain 1071" in line


@pytest.mark.parametrize(
    ("written_by", "used_by"),
    [
        (["watch", "attempted", "TASK"], ["tail"]),
        (["watch", "attempted", "TASK"], ["watch", "attempted", "0x" + "11" * 20]),
        (["watch", "attempted", "TASK"], ["watch", "task-status-changed", "TASK"]),
        (["tail", "attempted"], ["tail", "attempted", "task-status-changed"]),
        (["tail", "attempted"], ["tail"]),
    ],
    ids=["watch then tail", "another task", "another kind", "more events", "every event"],
)
def test_a_state_file_of_another_kind_of_watcher_is_refused(
    chain: Anvil, tmp_path: Path, written_by: list[str], used_by: list[str]
) -> None:
    state = _state_for(chain, tmp_path, *written_by)
    task = json.loads(state.read_text())["scope"]
    used = [a.replace("TASK", task["address"]) if task else a for a in used_by]
    line = _refused(chain, state, *used)
    assert "was written for" in line


def test_the_same_events_in_another_order_or_spelling_share_a_state_file(
    chain: Anvil, tmp_path: Path
) -> None:
    state = _state_for(chain, tmp_path, "tail", "attempted", "TaskStatusChanged")
    task = random_address()
    _, ids = _emit(chain, task, 1)
    result = run_cli(
        "tail",
        "task-status-changed",
        "Attempted",
        "--rpc",
        chain.url,
        "--json",
        "--state",
        str(state),
        "--count",
        "2",
    )
    assert result.code == 0, result.stderr
    # The event _state_for's run left beyond its --count (out of scope there, in scope here) and ours.
    assert _ids(result.stdout)[-1] == ids[0]
    assert os.path.getsize(state) > 0


@pytest.mark.slow
def test_a_state_file_across_a_restarted_dev_node_follows_the_new_chain_from_its_first_block(
    tmp_path: Path,
) -> None:
    """Hole 8 of the exactly-once issue: the new chain's events below the saved block were never printed."""
    node = Anvil()
    node.start()
    try:
        node.install_emitter(NEXUS)
        task = random_address()
        node.mine(20)  # the old chain ends well above where the new one's events will be
        _, old_ids = _emit(node, task, 3)
        state = tmp_path / "attempted.state"
        first = run_cli(*_watch(node, task, state, "--from-block", "0", "--count", "3"))
        assert first.code == 0, first.stderr
        assert _ids(first.stdout) == old_ids

        node.restart()  # the same port and chain id, a new chain from block 0
        node.install_emitter(NEXUS)
        _, new_ids = _emit(node, task, 3)
        assert node.block_number() < _saved(state).block_number

        second = run_cli(*_watch(node, task, state, "--count", "3"))
        assert second.code == 0, second.stderr
        assert _ids(second.stdout) == new_ids
        assert "no longer serves" in second.stderr and "from block 0" in second.stderr
        assert (
            json.loads(state.read_text())["genesis"] == node.rpc("eth_getBlockByNumber", "0x0", False)["hash"]
        )
    finally:
        node.stop()
