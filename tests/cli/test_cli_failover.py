"""``ogpu-events --rpc A --rpc B`` with A dead: the command follows B and says so in one line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from ogpu.events._cli.command import main
from ogpu.events.testing import FakeNode
from tests.cli_helpers import closed_port

TASK = "0x" + "ab" * 20


@pytest.fixture
def own_log_setup() -> Iterator[None]:
    """The command run in this process sets up the library's logger: put it back after."""
    logger = logging.getLogger("ogpu.events")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.mark.usefixtures("own_log_setup")
def test_a_dead_first_rpc_is_passed_over_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    with FakeNode() as node:
        node.emit("Attempted", task=TASK, provider="0x" + "cd" * 20, suggested_payment=7)
        args = ["watch", "attempted", TASK, "--rpc", dead, "--rpc", node.url]
        code = main([*args, "--from-block", "0", "--count", "1", "--json"])

    assert code == 0
    out, err = capsys.readouterr()
    (line,) = out.splitlines()
    assert json.loads(line)["suggested_payment"] == 7
    said = [line for line in err.splitlines() if dead in line]
    assert len(said) == 1, err
    assert f"switched from endpoint {dead} to {node.url}: connection refused" in said[0]
