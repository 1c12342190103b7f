"""A local anvil node with a log emitter at the Nexus address, for the demo and tests.

anvil comes from npm (``@foundry-rs/anvil``); ``make`` installs it under
``.cache/anvil``. The emitter is 17 bytes of runtime code that emits
``LOG1(topic0 = calldata[0:32], data = calldata[32:])``, so any Nexus event
with unindexed fields can be produced by a plain transaction.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from eth_abi.abi import encode as abi_encode

from ogpu.events._abi import EVENTS, canonical_type, load_abi

__all__ = ["ANVIL_VERSION", "EMITTER_CODE", "Anvil", "AnvilNotFoundError", "find_anvil"]

EMITTER_CODE = "0x366000600037600051602036036020a100"
ANVIL_VERSION = "1.7.1"
_INSTALL_HINT = f"npm install --no-save --prefix .cache/anvil @foundry-rs/anvil@{ANVIL_VERSION}"


class AnvilNotFoundError(RuntimeError):
    """Raised when no anvil binary can be found."""


def find_anvil() -> str:
    """The anvil binary: $OGPU_ANVIL, then .cache/anvil (native binary first), then PATH."""
    explicit = os.environ.get("OGPU_ANVIL")
    if explicit:
        return explicit
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        prefix = root / ".cache" / "anvil" / "node_modules"
        # The platform package holds the real binary; running it directly
        # avoids the node wrapper process in between.
        native = sorted(glob.glob(str(prefix / "@foundry-rs" / "anvil-*" / "bin" / "anvil")))
        if native:
            return native[0]
        wrapper = prefix / ".bin" / "anvil"
        if wrapper.exists():
            return str(wrapper)
    found = shutil.which("anvil")
    if found:
        return found
    raise AnvilNotFoundError(f"anvil not found; install it with: {_INSTALL_HINT} (or set OGPU_ANVIL)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Anvil:
    """A running anvil process and a synchronous JSON-RPC handle on it."""

    def __init__(self, *, chain_id: int = 1071, extra_args: tuple[str, ...] = ()) -> None:
        self.chain_id = chain_id
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(timeout=30.0)
        self._ids = 0
        self.account = ""

    def __enter__(self) -> Anvil:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        args = [find_anvil(), "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--chain-id", str(self.chain_id), "--silent", *self._extra_args]
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"anvil exited with {self._process.returncode}: {err.strip()}")
            try:
                self.rpc("eth_chainId")
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"anvil did not answer on {self.url} within {timeout}s") from None
                time.sleep(0.05)
        self.account = self.rpc("eth_accounts")[0]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process is not None and process.stderr is not None:
            process.stderr.close()
        self._http.close()

    def rpc(self, method: str, *params: Any) -> Any:
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}
        answer = self._http.post(self.url, json=body).json()
        if "error" in answer:
            raise RuntimeError(f"{method} failed: {answer['error']}")
        return answer["result"]

    # --- chain helpers ---

    def install_emitter(self, address: str) -> None:
        self.rpc("anvil_setCode", address, EMITTER_CODE)

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def set_automine(self, enabled: bool) -> None:
        self.rpc("evm_setAutomine", enabled)

    def emit(self, nexus: str, event: str, *values: Any) -> str:
        """Send a transaction that makes the emitter log ``event`` with ``values``; return its hash."""
        return str(
            self.rpc(
                "eth_sendTransaction",
                {"from": self.account, "to": nexus, "data": event_calldata(event, *values)},
            )
        )

    def receipt(self, tx_hash: str, timeout: float = 10.0) -> dict[str, Any]:
        """The receipt of ``tx_hash`` once mined (automine can answer before it has mined)."""
        deadline = time.monotonic() + timeout
        while (found := self.rpc("eth_getTransactionReceipt", tx_hash)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{tx_hash} not mined within {timeout}s")
            time.sleep(0.01)
        receipt: dict[str, Any] = found
        return receipt


def event_calldata(event: str, *values: Any) -> str:
    """Calldata for the emitter: topic0 of ``event`` followed by its ABI-encoded fields."""
    entry = next(e for e in load_abi() if e.get("name") == event and e["type"] == "event")
    types = [canonical_type(p) for p in entry["inputs"] if not p["indexed"]]
    return EVENTS[event].topic0 + abi_encode(types, list(values)).hex()
