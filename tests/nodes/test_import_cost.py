"""What importing costs: the heavy dependencies load when they are needed, not before.

eth-abi (which pulls in eth-utils and pydantic) costs several times what
the rest of ``ogpu.events`` does, and httpx about as much again; the
watchers decode the six critical events without eth-abi and touch the
network only from the first watcher on. These tests run a fresh
interpreter and look at ``sys.modules``: behaviour, not timing (the timing
is in ``make bench``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("httpx", "eth_abi", "eth_utils", "pydantic")

# Prints the heavy modules loaded by the end of the snippet it is appended to.
_REPORT = f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"


def _heavy_after(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", code + _REPORT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_import_ogpu_events_loads_neither_httpx_nor_eth_abi() -> None:
    assert _heavy_after("import ogpu.events\nfrom ogpu.events import watch_attempted, AttemptedEvent") == []


def test_calling_a_watcher_checks_its_input_without_the_transport() -> None:
    code = (
        "from ogpu.events import watch_attempted\n"
        "from ogpu.types import InvalidAddressError\n"
        "try:\n"
        "    watch_attempted('0x123')\n"
        "except InvalidAddressError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
        "watch_attempted('0x' + '11' * 20, from_block=0)  # a generator: nothing runs yet\n"
    )
    assert _heavy_after(code) == []


_ATTEMPTED_LOG = {
    "address": "0x2b0cc6058313801d5feb184a539e3a0c5a87a6a1",
    "topics": ["0x88c89788e8b61b93ed2a66e02b36e04d60275b78893674aa6134fad20874022d"],
    "data": "0x" + "00" * 12 + "11" * 20 + "00" * 12 + "22" * 20 + f"{7:064x}",
    "blockNumber": "0x5",
    "blockHash": "0x" + "ab" * 32,
    "transactionHash": "0x" + "cd" * 32,
    "logIndex": "0x0",
}


def test_the_six_watchers_events_decode_without_eth_abi() -> None:
    code = (
        "from ogpu.events._codec.abi import EVENTS\n"
        f"event = EVENTS['Attempted'].decode({_ATTEMPTED_LOG!r})\n"
        "assert event.suggested_payment == 7 and event.task == '0x' + '11' * 20, event\n"
    )
    assert _heavy_after(code) == []


def test_an_event_with_dynamic_fields_loads_eth_abi_when_first_decoded() -> None:
    # SourceUpdated carries strings: encoded here (after the first check) and decoded by the library.
    code = (
        "import sys\n"
        "from ogpu.events._codec.abi import EVENTS\n"
        "from ogpu.types import DeliveryMethod\n"
        "assert 'eth_abi' not in sys.modules\n"
        "from eth_abi.abi import encode\n"
        "spec = EVENTS['SourceUpdated']\n"
        "params = ('0x' + '33' * 20, 'ipfs://image', 1, 5, 6, 7, True, 'https://opt', 1, 9)\n"
        "struct = '(address,string,uint8,uint256,uint256,uint256,bool,string,uint8,uint256)'\n"
        "data = encode(['address', struct], ['0x' + '44' * 20, params])\n"
        "log = {'topics': [spec.topic0], 'data': '0x' + data.hex(), 'blockNumber': '0x1',"
        " 'blockHash': '0x' + 'ab' * 32, 'transactionHash': '0x' + 'cd' * 32, 'logIndex': '0x0'}\n"
        "event = spec.decode(log)\n"
        "assert event.source_params.image_metadata_url == 'ipfs://image', event\n"
        "assert event.source_params.delivery_method is DeliveryMethod.FIRST_RESPONSE, event\n"
    )
    assert "eth_abi" in _heavy_after(code)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["watch", "--help"],
        ["tail", "--help"],
        ["--version", "-v"],
        [],  # no command: usage on stderr
        ["watch", "attempted"],  # missing address
        ["watch", "attempted", "0x" + "11" * 20, "--poll-interval", "0"],
        ["watch", "nonsense", "0x" + "11" * 20],
        ["watch", "attempted", "0x1234"],
        ["tail", "NoSuchEvent"],
        ["tail", "--chain", "nochain"],
        ["tail", "--rpc", "ftp://example.org"],
    ],
    ids=lambda argv: " ".join(argv) or "(none)",
)
def test_ogpu_events_help_and_bad_input_answer_without_httpx_or_eth_abi(argv: list[str]) -> None:
    code = (
        "import contextlib, io\n"
        "from ogpu.events._cli.command import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:\n"
        "    try:\n"
        f"        status = main({argv!r})\n"
        "    except SystemExit as exc:\n"
        "        status = exc.code\n"
        "assert status in (0, 2), (status, err.getvalue())\n"
    )
    assert _heavy_after(code) == []
