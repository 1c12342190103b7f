"""``ogpu-events`` driven as a user drives it: a subprocess against a real node.

The tail tests expect exact output, so this module runs its own anvil and
no other test's events can slip in; each test starts at the block after
whatever earlier tests here left on it.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ogpu.events import SourceParams, SourceUpdatedEvent
from ogpu.events._cli.command import build_parser, stream_events
from ogpu.events._cli.output import CatchUpProgress, human_line
from ogpu.events._devnode.nodes import Anvil
from ogpu.events._stream.hub import active_hubs
from ogpu.types import DeliveryMethod, Environment
from tests.support.cli import CLI, LINE, Terminal, closed_port, env
from tests.support.devnodes import checksummed, random_address, send

UINT256_MAX = 2**256 - 1


def _run(*args: str, timeout: float = 30.0, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env(**variables), check=False
    )


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# --- help ---


@pytest.mark.nodes
def test_help_shows_examples_exit_codes_and_every_kind() -> None:
    result = _run("--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout
    assert "ogpu-events watch attempted 0xTASK" in result.stdout
    assert "3 --timeout passed without an event" in result.stdout
    watch = _run("watch", "--help")
    for kind in ("task-published", "attempted", "response-submitted", "response-status-changed"):
        assert kind in watch.stdout
    assert "task-status-changed" in watch.stdout and "registered" in watch.stdout


@pytest.mark.nodes
def test_installed_console_script_runs() -> None:
    script = Path(sys.executable).with_name("ogpu-events")
    if not script.exists():
        pytest.skip("ogpu-events is not installed next to this interpreter")
    result = subprocess.run([str(script), "tail", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "source-updated" in result.stdout


# --- watch ---


@pytest.mark.nodes
def test_watch_prints_one_aligned_line_per_event_and_stops_after_count(chain: Anvil) -> None:
    task, provider_a, provider_b = random_address(), random_address(), random_address()
    start = chain.block_number() + 1
    send(chain, "Attempted", task, provider_a, UINT256_MAX)
    send(chain, "Attempted", random_address(), provider_a, 1)  # another task: out of scope
    send(chain, "Attempted", task.upper().replace("0X", "0x"), provider_b, 7)
    send(chain, "Attempted", task, provider_b, 8)  # beyond --count

    result = _run("watch", "attempted", task, "--rpc", chain.url, "--from-block", str(start), "--count", "2")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [int(m["block"]) for m in parsed if m] == [start, start + 2]
    assert lines[0].split()[4:7] == [
        f"task={checksummed(task)}",
        f"provider={checksummed(provider_a)}",
        f"suggested_payment={UINT256_MAX}",
    ]
    assert lines[1].endswith(
        f"provider={checksummed(provider_b)} suggested_payment=7 (0.000000000000000007 OGPU)"
    )


@pytest.mark.nodes
def test_watch_json_is_one_object_per_line_with_exact_ints_and_enum_names(chain: Anvil) -> None:
    task = random_address()
    start = chain.block_number() + 1
    txs = [send(chain, "TaskStatusChanged", task, status) for status in (1, 2, 5)]

    result = _run(
        "watch",
        "task-status-changed",
        task,
        "--rpc",
        chain.url,
        "--from-block",
        str(start),
        "--count",
        "3",
        "--json",
    )

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["status"] for r in records] == ["ATTEMPTED", "RESPONDED", "FINALIZED"]
    assert [r["transaction_hash"] for r in records] == txs
    first = records[0]
    assert list(first) == [
        "event",
        "task",
        "status",
        "block_number",
        "transaction_hash",
        "log_index",
        "block_hash",
        "block_timestamp",
    ]
    assert first["event"] == "TaskStatusChanged"
    assert first["task"] == checksummed(task)
    assert first["block_number"] == start and first["log_index"] == 0
    assert re.fullmatch(r"0x[0-9a-f]{64}", first["block_hash"])


@pytest.mark.nodes
def test_from_block_negative_counts_back_from_the_head(chain: Anvil) -> None:
    task = random_address()
    txs = [send(chain, "Attempted", task, random_address(), n) for n in (1, 2, 3)]  # one block each

    # -1: the block before the head and the head itself, so the last two attempts.
    result = _run(
        "watch",
        "attempted",
        task,
        "--rpc",
        chain.url,
        "--from-block",
        "-1",
        "--count",
        "2",
        "--timeout",
        "10",
        "--json",
    )

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["transaction_hash"] for r in records] == txs[1:]
    assert [r["suggested_payment"] for r in records] == [2, 3]


# --- tail ---


def _every_event(
    source: str, task: str, response: str, provider: str, client: str
) -> list[tuple[str, tuple[Any, ...]]]:
    params = (client, "ipfs://" + "m" * 4_993, 5, UINT256_MAX, 2, 3, True, "https://p", 1, 4)
    return [
        ("TaskPublished", (task, source)),
        ("Attempted", (task, provider, UINT256_MAX)),
        ("ResponseSubmitted", (response, task)),
        ("ResponseStatusChanged", (response, 1)),
        ("TaskStatusChanged", (task, 5)),
        ("Registered", (provider, 9, source, 3)),
        ("SourcePublished", (source,)),
        ("SourceStatusChanged", (source, 1)),
        ("SourceUpdated", (source, params)),
    ]


@pytest.mark.nodes
def test_tail_json_shows_every_nexus_event(chain: Anvil) -> None:
    source, task, response, provider, client = (random_address() for _ in range(5))
    start = chain.block_number() + 1
    emitted = _every_event(source, task, response, provider, client)
    txs = [send(chain, name, *values) for name, values in emitted]

    result = _run("tail", "--rpc", chain.url, "--from-block", str(start), "--count", "9", "--json")

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["event"] for r in records] == [name for name, _ in emitted]
    assert [r["transaction_hash"] for r in records] == txs
    by_name = {r["event"]: r for r in records}
    assert by_name["Registered"]["preferred_environment"] == ["CPU", "NVIDIA"]
    assert by_name["Registered"]["registrant_id"] == 9
    assert by_name["SourceStatusChanged"]["status"] == "INACTIVE"
    assert by_name["ResponseStatusChanged"]["status"] == "CONFIRMED"
    params = by_name["SourceUpdated"]["source_params"]
    assert params["client"] == checksummed(client)
    assert params["image_metadata_url"] == "ipfs://" + "m" * 4_993  # JSON keeps the whole string
    assert params["image_environments"] == ["CPU", "AMD"]
    assert params["min_payment"] == UINT256_MAX
    assert params["privacy_enabled"] is True
    assert params["delivery_method"] == "FIRST_RESPONSE"


@pytest.mark.nodes
def test_tail_human_narrows_to_the_named_events(chain: Anvil) -> None:
    source, task, response, provider, client = (random_address() for _ in range(5))
    start = chain.block_number() + 1
    for name, values in _every_event(source, task, response, provider, client):
        send(chain, name, *values)

    named = ["source-updated", "TaskStatusChanged", "registered"]
    result = _run("tail", *named, "--rpc", chain.url, "--from-block", str(start), "--count", "3")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[3] for line in lines] == ["TaskStatusChanged", "Registered", "SourceUpdated"]
    # aligned: the fields start in the same column whatever the event name
    columns = {match.start("fields") for match in map(LINE.match, lines) if match}
    assert len(columns) == 1
    assert "status=FINALIZED" in lines[0]
    assert "preferred_environment=CPU|NVIDIA" in lines[1]
    assert "image_environments=CPU|AMD" in lines[2]
    assert "delivery_method=FIRST_RESPONSE" in lines[2]
    assert "(5000 chars)" in lines[2] and "m" * 4_000 not in lines[2]  # long strings shortened for people


# --- ending: --timeout, Ctrl-C ---


@pytest.mark.nodes
def test_timeout_exits_3_when_no_further_event_comes(chain: Anvil) -> None:
    task = random_address()
    start = chain.block_number() + 1
    send(chain, "Attempted", task, random_address(), 1)

    result = _run(
        "watch", "attempted", task, "--rpc", chain.url, "--from-block", str(start), "--timeout", "1",
        "--poll-interval", "0.1",
    )  # fmt: skip

    assert result.returncode == 3
    assert len(result.stdout.splitlines()) == 1
    assert _one_line(result.stderr) == "ogpu-events: no event within 1s"


@pytest.mark.nodes
def test_timeout_exits_3_when_nothing_comes_at_all(chain: Anvil) -> None:
    result = _run(
        "tail", "source-published", "--rpc", chain.url, "--timeout", "0.5", "--poll-interval", "0.1"
    )

    assert result.returncode == 3
    assert result.stdout == ""
    assert "no event within 0.5s" in _one_line(result.stderr)


def _read_line(stream: Any, timeout: float) -> str:
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"no output within {timeout}s")
    return str(stream.readline())


@pytest.mark.nodes
def test_sigint_stops_cleanly_with_exit_code_130(chain: Anvil) -> None:
    task = random_address()
    start = chain.block_number() + 1
    send(chain, "Attempted", task, random_address(), 1)
    process = subprocess.Popen(
        [
            *CLI,
            "watch",
            "attempted",
            task,
            "--rpc",
            chain.url,
            "--from-block",
            str(start),
            "--poll-interval",
            "0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    try:
        first = _read_line(process.stdout, 20.0)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert " Attempted " in first
    assert process.returncode == 130
    assert out == ""
    assert err == ""  # no traceback, no "KeyboardInterrupt"


@pytest.mark.nodes
@pytest.mark.anyio
async def test_interrupting_the_stream_uninstalls_its_filter(chain: Anvil) -> None:
    """What Ctrl-C does in the command (cancel the main task) leaves no filter behind."""
    task = random_address()
    start = chain.block_number() + 1
    send(chain, "Attempted", task, random_address(), 1)
    args = build_parser().parse_args(
        [
            "watch",
            "attempted",
            task,
            "--rpc",
            chain.url,
            "--from-block",
            str(start),
            "--poll-interval",
            "0.05",
        ]
    )
    out, err = io.StringIO(), io.StringIO()
    running = asyncio.create_task(stream_events(args, out, err))
    give_up = time.monotonic() + 15
    while not out.getvalue() or not any(hub.filter_id for hub in active_hubs()):
        assert time.monotonic() < give_up and not running.done(), err.getvalue()
        await asyncio.sleep(0.02)
    [filter_id] = [hub.filter_id for hub in active_hubs() if hub.filter_id]

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    assert active_hubs() == []
    with pytest.raises(RuntimeError, match="filter"):
        chain.rpc("eth_getFilterChanges", filter_id)


# --- errors: one line, the right exit code ---


@pytest.mark.nodes
def test_bad_address_exits_2_with_one_line(chain: Anvil) -> None:
    result = _run("watch", "attempted", "0x1234", "--rpc", chain.url)

    assert result.returncode == 2
    assert result.stdout == ""
    line = _one_line(result.stderr)
    assert line.startswith("ogpu-events: error:") and "0x1234" in line


@pytest.mark.nodes
@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["tail", "NoSuchEvent"], "NoSuchEvent"),
        (["watch", "attempted", "0x" + "ab" * 20, "--rpc", "ftp://example.org"], "RPC URL"),
    ],
    ids=["unknown-event", "malformed-rpc-url"],
)
def test_bad_input_exits_2_with_one_line(args: list[str], mentions: str) -> None:
    result = _run(*args)

    assert result.returncode == 2
    assert mentions in _one_line(result.stderr)


@pytest.mark.nodes
def test_unreachable_rpc_fails_with_one_line_and_masked_credentials() -> None:
    url = f"http://alice:s3cret-pw@127.0.0.1:{closed_port()}/"

    result = _run("watch", "attempted", random_address(), "--rpc", url, OGPU_STARTUP_DEADLINE="0.5")

    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert "s3cret" not in line and "alice" not in line
    assert f"http://***@127.0.0.1:{url.rsplit(':', 1)[1]}" in line
    assert line.endswith("failed: connection refused")


@pytest.mark.nodes
def test_unreachable_rpc_while_reading_the_head_for_a_negative_from_block() -> None:
    url = f"http://bob:hunter2@127.0.0.1:{closed_port()}"

    result = _run("tail", "--rpc", url, "--from-block", "-10", OGPU_STARTUP_DEADLINE="0.5")

    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert "hunter2" not in line and "eth_blockNumber" in line


# --- the demo ---


@pytest.mark.nodes
@pytest.mark.slow
def test_demo_shows_all_six_watchers_and_exits_0() -> None:
    result = _run("demo", timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    labels = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  watch_")}
    assert labels == {
        "watch_registered",
        "watch_task_published",
        "watch_attempted",
        "watch_response_submitted",
        "watch_response_status_changed",
        "watch_task_status_changed",
    }
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("6 watchers, 10 events, all delivered in order")
    assert "status=FINALIZED" in result.stdout and "status=CONFIRMED" in result.stdout
    # The story says "asking 2.5 OGPU": the event says so too, beside the exact wei.
    assert "suggested_payment=2500000000000000000 (2.5 OGPU)" in result.stdout


# --- rendering, without a node ---


def test_human_line_keeps_one_event_on_one_line() -> None:
    params = SourceParams(
        "0x" + "11" * 20,
        "line one\nline two " + "z" * 200,
        Environment(0),
        1,
        2,
        3,
        False,
        "",
        DeliveryMethod.MANUAL_CONFIRMATION,
        4,
    )
    event = SourceUpdatedEvent("0x" + "22" * 20, params, 12, "0x" + "ab" * 32, 0, "0x" + "cd" * 32)

    line = human_line(event)

    assert "\n" not in line
    assert '"line one\\nline two' in line and "(218 chars)" in line
    assert "image_environments=NONE" in line and "privacy_enabled=false" in line
    assert 'optional_params_url=""' in line


def test_catch_up_progress_appears_on_a_terminal_after_a_few_seconds() -> None:
    now = [0.0]
    screen = Terminal()
    progress = CatchUpProgress(screen, delay=3.0, clock=lambda: now[0])

    now[0] = 1.0
    progress(0, 99_999, 999_999)  # 1 s in: too early to bother anyone
    assert screen.getvalue() == ""
    now[0] = 4.0
    progress(0, 399_999, 999_999)  # 300,000 blocks in the 3 s since the first chunk
    assert screen.getvalue() == (
        "\rcatching up: 400,000 of 1,000,000 blocks scanned (40%), 100,000 blocks/s, 0:06 left\x1b[K"
    )
    progress(0, 999_999, 999_999)  # done: the status line is erased
    assert screen.getvalue().endswith("\r\x1b[K")


def test_catch_up_progress_says_nothing_when_stderr_is_not_a_terminal() -> None:
    now = [0.0]
    captured = io.StringIO()
    progress = CatchUpProgress(captured, delay=0.0, clock=lambda: now[0])
    for step in range(1, 10):
        now[0] = float(step * 10)
        progress(0, step * 1_000, 100_000)
    assert captured.getvalue() == ""
