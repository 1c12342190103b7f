"""``ogpu-events --state URL`` (a database checkpoint) and ``--lease S`` (replicas of one command)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ogpu.events._devnode.nodes import Anvil
from tests.support.cli import CLI, env, run_cli
from tests.support.devnodes import random_address, wait_for
from tests.support.fakenode import NEXUS
from tests.support.postgres import PostgresServer

# Every test here starts the command in a subprocess.
pytestmark = pytest.mark.nodes


def _emit(node: Anvil, task: str, payments: range) -> None:
    with node.one_block():
        hashes = [node.emit(NEXUS, "Attempted", task, random_address(), p) for p in payments]
    node.receipt(hashes[-1])


def _payments(stdout: str) -> list[int]:
    return [int(json.loads(line)["suggested_payment"]) for line in stdout.splitlines()]


def _watch(node: Anvil, task: str, state: str, *extra: str) -> list[str]:
    return ["watch", "attempted", task, "--rpc", node.url, "--json", "--state", state, *extra]


def test_three_runs_of_count_4_give_12_events_exactly_once_in_order(
    shared_anvil: Anvil, tmp_path: Path
) -> None:
    # On SQLite: the Postgres URL goes the same way through the command (see the replicas below).
    db_url = f"sqlite:///{tmp_path}/cli.db"
    task = random_address()
    _emit(shared_anvil, task, range(15))
    runs = [
        run_cli(*_watch(shared_anvil, task, db_url, "--from-block", "0", "--count", "4")) for _ in range(3)
    ]
    assert [r.code for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    assert [_payments(r.stdout) for r in runs] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    # Another kind of command keeps its own row in the same database.
    other = run_cli(*_watch(shared_anvil, random_address(), db_url, "--count", "1", "--timeout", "0.5"))
    assert other.code == 3, other.stderr


def test_bad_state_urls_and_a_lease_without_one_are_bad_input(shared_anvil: Anvil, tmp_path: Path) -> None:
    task = random_address()
    for args in (
        _watch(shared_anvil, task, "sqlite://host/x.db"),
        _watch(shared_anvil, task, str(tmp_path / "state.json"), "--lease", "2"),
    ):
        outcome = run_cli(*args)
        assert outcome.code == 2, outcome.stderr
        assert outcome.stderr.startswith("ogpu-events: error: ")


def test_an_unreachable_database_exits_1_with_the_password_masked(
    shared_anvil: Anvil, postgres: PostgresServer
) -> None:
    url = f"postgresql://postgres:s3cret@127.0.0.1:{postgres.port}/missing_db"
    outcome = run_cli(*_watch(shared_anvil, random_address(), url))
    assert outcome.code == 1, outcome.stderr
    assert "s3cret" not in outcome.stderr and "***@127.0.0.1" in outcome.stderr
    assert outcome.stderr.count("\n") == 1


def test_replicas_of_one_command_take_turns(shared_anvil: Anvil, postgres_url: str, tmp_path: Path) -> None:
    task = random_address()
    _emit(shared_anvil, task, range(3))
    args = [*CLI, *_watch(shared_anvil, task, postgres_url, "--from-block", "0", "--lease", "1")]
    logs = [tmp_path / "first.out", tmp_path / "second.out"]
    replicas = []
    for log in logs:
        with open(log, "wb") as out:
            replicas.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env()))
        # The first one takes the lease and prints before the second starts.
        wait_for(lambda: len(logs[0].read_text().splitlines()) >= 3, "the first replica's events")
    time.sleep(1.5)  # two thirds of the lease renewed meanwhile: the second one keeps waiting
    try:
        assert _payments(logs[0].read_text()) == [0, 1, 2]
        assert logs[1].read_text() == ""  # waiting
        replicas[0].send_signal(signal.SIGTERM)  # hands the lease over at once
        assert replicas[0].wait(15) == 143
        _emit(shared_anvil, task, range(3, 5))
        wait_for(lambda: len(logs[1].read_text().splitlines()) >= 2, "the second replica's events")
        assert _payments(logs[1].read_text()) == [3, 4]
    finally:
        for replica in replicas:
            replica.kill()
            replica.wait()
