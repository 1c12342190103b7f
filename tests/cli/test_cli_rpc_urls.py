"""``ogpu-events --rpc A --rpc B``: several endpoints on the command line, checked before anything runs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from ogpu.events._cli.command import main
from ogpu.events.testing import FakeNode
from tests.cli_helpers import closed_port, run_cli

TASK = "0x" + "ab" * 20


def _error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_malformed_second_rpc_is_bad_input_named_by_its_place() -> None:
    outcome = run_cli(
        "watch", "attempted", TASK, "--rpc", "http://127.0.0.1:8545", "--rpc", "ftp://u:hunter2@x.example"
    )

    assert outcome.code == 2 and outcome.stdout == ""
    line = _error_line(outcome.stderr)
    assert "RPC URL 2 of 2" in line and "hunter2" not in line


def test_the_same_rpc_twice_is_bad_input() -> None:
    url = "http://127.0.0.1:8545/v3/0123456789abcdef0123"
    outcome = run_cli("tail", "--rpc", url, "--rpc", url)

    assert outcome.code == 2
    line = _error_line(outcome.stderr)
    assert "repeats URL 1" in line and "0123456789abcdef0123" not in line


def test_a_malformed_entry_in_the_environment_is_bad_input() -> None:
    outcome = run_cli("tail", variables={"OGPU_RPC_URL": "http://127.0.0.1:8545,127.0.0.1:8546"})

    assert outcome.code == 2
    assert "RPC URL 2 of 2" in _error_line(outcome.stderr)


@pytest.fixture
def own_log_setup() -> Iterator[None]:
    """The command run in this process sets up the library's logger: put it back after."""
    logger = logging.getLogger("ogpu.events")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.mark.usefixtures("own_log_setup")
def test_with_several_rpcs_the_command_follows_the_first(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeNode() as node:
        node.emit("Attempted", task=TASK, provider="0x" + "cd" * 20, suggested_payment=7)
        dead = f"http://127.0.0.1:{closed_port()}"
        code = main(
            [
                "watch",
                "attempted",
                TASK,
                "--rpc",
                node.url,
                "--rpc",
                dead,
                "--from-block",
                "0",
                "--count",
                "1",
                "--json",
            ]
        )

    assert code == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["suggested_payment"] == 7
