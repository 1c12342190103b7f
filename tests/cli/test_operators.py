"""``ogpu-events`` as operators run it: what it says on stderr, and when (issue 21).

Each test runs the command in a subprocess, as a user or a service manager
does, against the session's anvil or a small local node.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ogpu import ChainConfig
from ogpu.events._devnode.nodes import Anvil
from tests.support.cli import CLI, env, run_cli, run_cli_in_terminal
from tests.support.devnodes import random_address
from tests.support.fakenode import NEXUS
from tests.support.jsonrpc_server import jsonrpc_server

# Every test here starts the command in a subprocess.
pytestmark = pytest.mark.nodes


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


def test_a_node_of_another_chain_is_said_once_with_how_to_choose() -> None:
    with jsonrpc_server(chain_id=31337) as url:
        outcome = run_cli("tail", "--rpc", url, "--timeout", "1")

    assert outcome.code == 3, outcome.stderr
    notes = [line for line in outcome.stderr.splitlines() if "31337" in line]
    assert len(notes) == 1, outcome.stderr
    note = notes[0]
    assert "mainnet (1071)" in note
    assert ChainConfig.get_contract_address("NEXUS", "mainnet") in note
    assert "--chain" in note and "OGPU_CHAIN" in note
    assert len(note) <= 240


def test_a_node_of_the_configured_chain_gets_no_note(shared_anvil: Anvil) -> None:
    outcome = run_cli("tail", "--rpc", shared_anvil.url, "--timeout", "0.5")

    assert outcome.code == 3
    assert outcome.stderr == "ogpu-events: no event within 0.5s\n"


def test_retry_lines_and_the_final_error_name_the_call_briefly_and_fit_160_characters() -> None:
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(jsonrpc_server())
        url = base.replace("http://", "http://user:pw@") + "/v3/SECRETKEY0123456789abc?apikey=QUERYSECRET42"
        process = subprocess.Popen(
            [*CLI, "tail", "--rpc", url, "--timeout", "2", "--poll-interval", "0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
        )  # fmt: skip
        time.sleep(1.5)  # the stream is polling: the node goes away under it
        stack.close()
        _, stderr = process.communicate(timeout=30)

    assert process.returncode == 1, stderr
    lines = stderr.splitlines()
    retries = [line for line in lines if "retrying in" in line]
    assert retries, stderr
    assert all(len(line) <= 160 for line in [*retries, lines[-1]]), lines
    polls = [line for line in retries if "poll (" in line]
    assert polls, retries
    assert re.search(r"poll \(\d+ calls\) failed at http://\*{3}@127\.0\.0\.1:", polls[0])
    assert "SECRETKEY" not in stderr and "QUERYSECRET" not in stderr
    assert lines[-1].startswith("ogpu-events: error: "), lines[-1]
    assert " to http://***@127.0.0.1:" in lines[-1]


@pytest.mark.parametrize(
    ("given", "shown", "says"),
    [
        ("localhost:8555", "'localhost:8555'", "did you mean 'http://localhost:8555'?"),
        ("not a url", "'not a url'", "no scheme"),
        ("mainnet.infura.io/v3/MYAPIKEY123", "'mainnet.infura.io/v3/***'", "http:// or https://"),
        ("ftp://node.example", "'ftp://node.example'", "must use http:// or https://, not ftp://"),
        ("http://", "'http://'", "has no host"),
    ],
)
def test_a_url_is_echoed_as_given_masked_with_what_is_missing(given: str, shown: str, says: str) -> None:
    outcome = run_cli("tail", "--rpc", given)

    assert outcome.code == 2
    assert outcome.stderr.count("\n") == 1, outcome.stderr
    assert shown in outcome.stderr and says in outcome.stderr, outcome.stderr
    assert "://8555" not in outcome.stderr and "'://" not in outcome.stderr
    assert "MYAPIKEY123" not in outcome.stderr


def test_a_reader_that_goes_away_ends_the_command_within_a_poll_interval(shared_anvil: Anvil) -> None:
    # `ogpu-events … | head -3`: everything printed fits in the pipe, and no
    # further event comes to fail a write; the command notices all the same.
    task = random_address()
    start = shared_anvil.block_number() + 1
    for payment in range(5):
        shared_anvil.emit(NEXUS, "Attempted", task, random_address(), payment)
    process = subprocess.Popen(
        [*CLI, *_watch(shared_anvil, task, "--from-block", str(start), "--poll-interval", "0.5")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(),
    )  # fmt: skip
    try:
        assert process.stdout is not None
        # Every event is out (head has it in its pipe) before head exits.
        lines = [process.stdout.readline() for _ in range(5)]
        assert all(lines), lines
        process.stdout.close()  # what head does after its third line
        began = time.monotonic()
        code = process.wait(timeout=10)
        waited = time.monotonic() - began
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert code == 0, stderr
    assert stderr == ""
    assert waited < 5, waited


def test_a_second_command_on_the_same_state_file_is_refused_while_the_first_runs(
    shared_anvil: Anvil, tmp_path: Path
) -> None:
    task = random_address()
    start = shared_anvil.block_number() + 1
    shared_anvil.emit(NEXUS, "Attempted", task, random_address(), 1)
    state = tmp_path / "state.json"
    args = _watch(shared_anvil, task, "--state", str(state), "--from-block", str(start))
    first = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()
    )
    try:
        assert first.stdout is not None
        assert first.stdout.readline(), "the first command printed nothing"

        second = run_cli(*args, "--count", "1", "--timeout", "5")

        assert second.code == 2, second.stderr
        assert second.stdout == ""
        [line] = second.stderr.splitlines()
        assert f"in use by another ogpu-events (pid {first.pid})" in line, line
    finally:
        first.terminate()
        first.communicate(timeout=15)
    assert first.returncode == 143
    # Once the first has stopped, the file is free again, and no lock file is left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    shared_anvil.emit(NEXUS, "Attempted", task, random_address(), 2)
    third = run_cli(*args, "--count", "1", "--timeout", "10")
    assert third.code == 0, third.stderr
    assert json.loads(third.stdout)["suggested_payment"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_during_catch_up_erases_the_progress_line(sig: signal.Signals) -> None:
    with jsonrpc_server(head=20_000_000, slow_logs=0.04) as url:
        controller, terminal = pty.openpty()
        process = subprocess.Popen(
            [*CLI, "tail", "--rpc", url, "--from-block", "0"],
            stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, env=env(),
        )  # fmt: skip
        os.close(terminal)
        screen = b""
        try:
            deadline = time.monotonic() + 20
            while b"catching up" not in screen and time.monotonic() < deadline:
                if select.select([controller], [], [], 0.1)[0]:
                    screen += os.read(controller, 65536)
            assert b"catching up" in screen, screen
            process.send_signal(sig)
            code = process.wait(timeout=15)
            with contextlib.suppress(OSError):  # EIO once the child's side is closed
                while select.select([controller], [], [], 0.2)[0]:
                    chunk = os.read(controller, 65536)
                    if not chunk:
                        break
                    screen += chunk
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            os.close(controller)

    assert code == (130 if sig == signal.SIGINT else 143)
    after = screen[screen.rindex(b"catching up") :]
    assert b"\r\x1b[K" in after, after  # the status line is erased, not left under the prompt


def test_the_demo_without_anvil_says_how_to_get_anvil_not_make_test(tmp_path: Path) -> None:
    # As after `pip install ogpu`: no anvil on PATH, none in a .cache of a checkout.
    hide_caches = (
        "import sys, ogpu.events._devnode.nodes as d; d.cache_dirs = lambda tool: []; "
        "from ogpu.events._cli.command import main; sys.exit(main(['demo']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", hide_caches],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
        env=env(PATH=os.path.dirname(sys.executable)),
    )  # fmt: skip

    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()
    assert "make test" not in line
    assert "npm install -g @foundry-rs/anvil@" in line and "foundryup" in line and "OGPU_ANVIL" in line


def test_event_lines_fit_the_terminal_and_stay_whole_in_a_pipe(shared_anvil: Anvil) -> None:
    task = random_address()
    start = shared_anvil.block_number() + 1
    shared_anvil.emit(NEXUS, "Attempted", task, random_address(), 2_500_000_000_000_000_000)
    args = ("watch", "attempted", task, "--rpc", shared_anvil.url, "--from-block", str(start), "--count", "1")

    narrow = run_cli_in_terminal(*args, columns=100)
    piped = run_cli(*args)

    assert narrow.code == 0 and piped.code == 0, narrow.stdout + piped.stderr
    [_, line] = narrow.stdout.strip().splitlines()
    assert len(line) <= 100, line
    assert "task=0x" in line and "\u2026" in line  # addresses shortened first
    [whole] = piped.stdout.splitlines()
    assert len(whole) > 100 and "\u2026" not in whole  # a pipe gets every character
    assert task.lower()[2:] in whole.lower()


@pytest.mark.slow
def test_a_provider_s_range_cap_prints_no_warning_and_one_info_line_with_v() -> None:
    with jsonrpc_server(head=12_499, max_range=500) as url:
        quiet = run_cli("tail", "--rpc", url, "--from-block", "0", "--timeout", "1")
        verbose = run_cli("tail", "--rpc", url, "--from-block", "0", "--timeout", "1", "-v")

    assert quiet.code == verbose.code == 3, quiet.stderr + verbose.stderr
    assert quiet.stderr == "ogpu-events: no event within 1s\n"
    said = [line for line in verbose.stderr.splitlines() if "refused eth_getLogs" in line]
    assert len(said) == 1 and said[0].startswith("ogpu-events: INFO: "), verbose.stderr
    assert "500-block chunks" in said[0]
