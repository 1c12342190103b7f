"""What a newcomer sees from ``ogpu-events``: block times, a header, spellings, versions, amounts.

The command runs as a subprocess against this module's own anvil, whose
block times the tests set (so the block's time cannot be mistaken for the
moment of printing).
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import time
from importlib import metadata

import httpx
import pytest
import respx

from ogpu.events import AttemptedEvent, SourceParams, SourceUpdatedEvent
from ogpu.events._cli.blocktimes import BlockTimes
from ogpu.events._cli.output import CatchUpProgress, human_line, ogpu_amount
from ogpu.events._devnode.nodes import Anvil
from ogpu.events._net.rpc import RpcClient
from ogpu.types import DeliveryMethod, Environment
from tests.support.cli import CLI, LINE, Terminal, env, run_cli, run_cli_in_terminal
from tests.support.devnodes import random_address
from tests.support.fakenode import NEXUS

# 2030-01-02 03:04:05 UTC: far from any moment a test prints at.
BLOCK_TIME = 1893553445


def _attempt(node: Anvil, task: str, amount: int = 1, *, at: int | None = None) -> int:
    """Emit an Attempted log in a block of its own; the block's number."""
    if at is not None:
        node.rpc("evm_setNextBlockTimestamp", at)
    tx = node.emit(NEXUS, "Attempted", task, random_address(), amount)
    return int(node.receipt(tx)["blockNumber"], 16)


# --- 3: the block's time, a header on terminals ---


@pytest.mark.nodes
def test_lines_show_the_blocks_time_and_json_carries_it(chain: Anvil) -> None:
    task = random_address()
    block = _attempt(chain, task, at=BLOCK_TIME)
    common = ("watch", "attempted", task, "--rpc", chain.url, "--from-block", str(block), "--count", "1")

    human = run_cli(*common)
    as_json = run_cli(*common, "--json")

    assert human.code == 0, human.stderr
    match = LINE.match(human.stdout.strip())
    assert match, human.stdout
    assert match["time"] == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(BLOCK_TIME))
    assert human.stdout.count("\n") == 1  # no header when stdout is a pipe
    assert as_json.code == 0, as_json.stderr
    record = json.loads(as_json.stdout)
    assert record["block_timestamp"] == BLOCK_TIME
    assert record["block_number"] == block


@pytest.mark.nodes
def test_a_terminal_gets_a_header_line_above_aligned_events(chain: Anvil) -> None:
    task = random_address()
    first = _attempt(chain, task, 5)
    _attempt(chain, task, 6)

    result = run_cli_in_terminal(
        "watch", "attempted", task, "--rpc", chain.url, "--from-block", str(first), "--count", "2"
    )

    assert result.code == 0, result.stdout
    header, *lines = result.stdout.strip().splitlines()
    assert header.split() == ["BLOCK", "TIME", f"({time.strftime('%Z')})", "BLOCK", "EVENT", "FIELDS"]
    assert len(lines) == 2 and all(LINE.match(line) for line in lines), lines
    assert header.index("EVENT") == lines[0].index("Attempted")
    assert header.index("FIELDS") == lines[0].index("task=")


@pytest.mark.anyio
async def test_block_headers_are_fetched_once_each_in_one_batch() -> None:
    url = "http://node.test/"
    hashes = ["0x" + f"{n:064x}" for n in (1, 2, 3)]
    stamps = {hashes[0]: 100, hashes[1]: 200, hashes[2]: 300}
    bodies: list[object] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        calls = body if isinstance(body, list) else [body]
        results = [
            {"jsonrpc": "2.0", "id": c["id"], "result": {"timestamp": hex(stamps[c["params"][0]])}}
            for c in calls
        ]
        return httpx.Response(200, json=results if isinstance(body, list) else results[0])

    with respx.mock() as router:
        router.post(url).mock(side_effect=answer)
        client = RpcClient(url)
        times = BlockTimes(client)
        first = await times.lookup([hashes[0], hashes[1], hashes[0].upper().replace("0X", "0x")])
        second = await times.lookup([hashes[1], hashes[2]])
        await client.aclose()

    assert first == {hashes[0]: 100, hashes[1]: 200}
    assert second == {hashes[1]: 200, hashes[2]: 300}
    assert client.requests_sent == 2
    assert isinstance(bodies[0], list) and [c["params"][0] for c in bodies[0]] == hashes[:2]
    assert isinstance(bodies[1], dict) and bodies[1]["params"] == [hashes[2], False]


# --- 4: a start block above the head ---


@pytest.mark.nodes
def test_a_start_block_above_the_head_is_announced_and_then_delivered(chain: Anvil) -> None:
    task = random_address()
    head = chain.block_number()
    process = subprocess.Popen(
        [*CLI, "watch", "attempted", task, "--rpc", chain.url, "--from-block", str(head + 2), "--count", "1",
         "--poll-interval", "0.1", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
    )  # fmt: skip
    try:
        assert process.stderr is not None
        notice = process.stderr.readline()
        _attempt(chain, task, 1)  # head + 1: before the start block
        _attempt(chain, task, 2)  # head + 2
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert notice == f"ogpu-events: block {head + 2} is ahead of the head ({head}); waiting for it\n"
    assert process.returncode == 0, err
    assert json.loads(out)["suggested_payment"] == 2


# --- 5: one spelling rule everywhere ---


@pytest.mark.nodes
@pytest.mark.parametrize(
    ("kind", "event"),
    [
        ("Attempted", "Attempted"),
        ("ATTEMPTED", "Attempted"),
        ("task_status_changed", "TaskStatusChanged"),
        ("TaskStatusChanged", "TaskStatusChanged"),
    ],
)
def test_watch_takes_any_spelling_of_the_kind(chain: Anvil, kind: str, event: str) -> None:
    task = random_address()
    values = (task, random_address(), 1) if event == "Attempted" else (task, 2)
    block = int(chain.receipt(chain.emit(NEXUS, event, *values))["blockNumber"], 16)

    result = run_cli(
        "watch", kind, task, "--rpc", chain.url, "--from-block", str(block), "--count", "1", "--json"
    )

    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["event"] == event


@pytest.mark.nodes
@pytest.mark.parametrize(
    ("option", "environment"),
    [(["--chain", "1071"], {}), (["--chain", "OGPU-Mainnet"], {}), ([], {"OGPU_CHAIN": "Mainnet"})],
    ids=["chain-id", "chain-name-any-case", "env-name-any-case"],
)
def test_the_chain_is_taken_by_name_or_id(
    chain: Anvil, option: list[str], environment: dict[str, str]
) -> None:
    task = random_address()
    block = _attempt(chain, task)

    result = run_cli(
        "watch", "attempted", task, *option, "--rpc", chain.url, "--from-block", str(block), "--count", "1",
        variables=environment,
    )  # fmt: skip

    assert result.code == 0, result.stderr
    assert " Attempted " in result.stdout


@pytest.mark.nodes
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["watch", "no-such-kind", "0x" + "ab" * 20],
            "unknown KIND 'no-such-kind' for watch; known: task-published",
        ),
        (["tail", "--chain", "5"], "unknown chain 5; known chains: mainnet (1071), testnet (200820172034)"),
    ],
    ids=["kind", "chain"],
)
def test_unknown_spellings_are_one_line_and_exit_2(args: list[str], says: str) -> None:
    result = run_cli(*args)

    assert result.code == 2
    assert result.stderr.count("\n") == 1
    assert says in result.stderr


# --- 6: --version ---


@pytest.mark.nodes
def test_version_and_with_v_the_dependencies() -> None:
    short = run_cli("--version")
    long = run_cli("--version", "-v")

    assert short.code == 0 and long.code == 0
    assert short.stdout == f"ogpu-events (ogpu) {metadata.version('ogpu')}\n"
    lines = long.stdout.splitlines()
    assert lines[0] == short.stdout.strip()
    for name in ("httpx", "eth-abi", "eth-utils", "pycryptodome"):
        assert f"  {name} {metadata.version(name)}" in lines
    assert lines[-1].startswith("  Python 3.")


# --- 10: amounts in OGPU beside wei ---


def test_amounts_show_ogpu_beside_the_exact_wei() -> None:
    event = AttemptedEvent(
        "0x" + "11" * 20, "0x" + "22" * 20, 25 * 10**17, 7, "0x" + "ab" * 32, 0, "0x" + "cd" * 32
    )
    params = SourceParams(
        "0x" + "33" * 20, "", Environment.CPU, 10**18, 1234 * 10**18, 60, False, "",
        DeliveryMethod.FIRST_RESPONSE, 0,
    )  # fmt: skip
    update = SourceUpdatedEvent("0x" + "44" * 20, params, 7, "0x" + "ab" * 32, 1, "0x" + "cd" * 32)

    assert "suggested_payment=2500000000000000000 (2.5 OGPU)" in human_line(event)
    line = human_line(update)
    assert "min_payment=1000000000000000000 (1 OGPU)" in line
    assert "min_available_lockup=1234000000000000000000 (1,234 OGPU)" in line
    assert "max_expiry_duration=60 " in line  # seconds, not an amount
    assert ogpu_amount(1) == "0.000000000000000001 OGPU"
    assert ogpu_amount(2**256 - 1).endswith(".584007913129639935 OGPU")


# --- 11: a steady catch-up estimate ---


def _estimates(screen: Terminal) -> list[float | None]:
    found: list[float | None] = []
    for status in screen.getvalue().split("\r"):
        if not status.startswith("catching up"):
            continue
        match = re.search(r"(\d+):(\d\d) left", status)
        found.append(int(match[1]) * 60 + int(match[2]) if match else None)
    return found


def test_the_time_left_does_not_jump_when_chunks_arrive_unevenly() -> None:
    # The node takes 3 s to answer the first chunk, then chunks of 2,000
    # blocks arrive alternately 0.1 s and 0.9 s apart: 4,000 blocks/s on average.
    now = [0.0]
    screen = Terminal()
    progress = CatchUpProgress(screen, delay=3.0, min_interval=0.0, clock=lambda: now[0])
    now[0], done = 3.0, 2_000
    progress(1, done, 200_000)
    for step in range(40):
        now[0] += 0.1 if step % 2 == 0 else 0.9
        done += 2_000
        progress(1, done, 200_000)

    estimates = _estimates(screen)
    assert estimates[0] is None  # one chunk gives no speed: nothing is guessed from the slow start
    known = [e for e in estimates if e is not None]
    assert len(known) == 40
    for before, after in itertools.pairwise(known):
        assert after <= before * 1.25 + 1 and after >= before * 0.6 - 1, known
    # and the estimate settles near the truth: (200,000 - 82,000) blocks at 4,000/s
    assert 20 <= known[-1] <= 45, known
