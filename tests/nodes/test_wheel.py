"""The built wheel carries the vendored ABI: install it outside the checkout and decode."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address

ROOT = Path(__file__).resolve().parents[2]

# Decodes one Attempted log with the installed package, from a folder that is
# not the checkout, and prints where the package and its ABI came from.
_PROBE = """
import ogpu, ogpu.events._codec.abi as abi
log = {
    "topics": [abi.EVENTS["Attempted"].topic0],
    "data": "0x" + "00" * 12 + "11" * 20 + "00" * 12 + "ab" * 20 + "%064x" % 12345,
    "blockNumber": "0x10", "transactionHash": "0x" + "cd" * 32, "logIndex": "0x2",
    "blockHash": "0x" + "ef" * 32,
}
event = abi.EVENTS["Attempted"].decode(log)
print(ogpu.__file__)
print(event.provider, event.suggested_payment, event.block_number)
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX venv layout")
def test_wheel_installed_in_a_fresh_venv_decodes_a_log(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    [wheel] = dist.glob("ogpu-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, cwd=tmp_path)
    out = subprocess.run(
        [str(python), "-c", _PROBE], check=True, cwd=tmp_path, capture_output=True, text=True
    ).stdout.split("\n")
    assert out[0].startswith(str(env_dir)), "imported from the fresh venv, not the checkout"
    assert out[1] == f"{to_checksum_address('0x' + 'ab' * 20)} 12345 16"
