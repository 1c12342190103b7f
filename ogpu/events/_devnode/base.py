"""What every local development node shares: the process, JSON-RPC, chain helpers.

:class:`DevNode` is the base of ``Anvil``, ``Hardhat`` and ``Ganache`` (in
``_devnode.py``, which says how each starts and which methods differ). The
emitter is 17 bytes of runtime code that emits
``LOG1(topic0 = calldata[0:32], data = calldata[32:])``, so any Nexus event
with unindexed fields can be produced by a plain transaction.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, ClassVar, TypeVar

import httpx

__all__ = ["EMITTER_CODE", "DevNode", "DevNodeNotFoundError", "cache_dirs", "event_calldata", "free_port"]

EMITTER_CODE = "0x366000600037600051602036036020a100"

_Node = TypeVar("_Node", bound="DevNode")


class DevNodeNotFoundError(RuntimeError):
    """Raised when a development node's program is not installed."""


class DevNode:
    """A running development node process and a synchronous JSON-RPC handle on it.

    Subclasses say how to start their node (:meth:`command`) and name the
    node-specific methods; everything else is shared. ``port`` defaults to a
    free one; :meth:`restart` keeps it, so clients see the same URL.
    """

    name: ClassVar[str] = "node"
    # Method that puts runtime code at an address.
    set_code_method: ClassVar[str] = "anvil_setCode"

    def __init__(self, *, chain_id: int = 1071, port: int | None = None, extra_args: tuple[str, ...] = ()):
        self.chain_id = chain_id
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = extra_args
        self.account = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._http = httpx.Client(timeout=30.0)
        self._ids = 0

    def __enter__(self: _Node) -> _Node:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    # --- what subclasses provide ---

    @classmethod
    def find(cls) -> list[str]:
        """The argv prefix that runs this node; ``DevNodeNotFoundError`` if it is not installed."""
        raise NotImplementedError

    def command(self) -> list[str]:
        """The argv that starts this node listening on ``self.port`` with ``self.chain_id``."""
        raise NotImplementedError

    def workdir(self) -> str | None:
        """The directory the process runs in (``None``: the current one)."""
        return None

    def after_start(self) -> None:
        """Called once the node answers, before :meth:`start` returns."""

    def cleanup(self) -> None:
        """Called by :meth:`stop` after the process is gone."""

    # --- the process ---

    def start(self, timeout: float = 60.0) -> None:
        """Start the node and wait until it answers JSON-RPC."""
        if self._http.is_closed:
            self._http = httpx.Client(timeout=30.0)
        # stderr goes to a file, not a pipe: a pipe nobody reads fills up and
        # blocks a chatty node mid-test; the file is read if the node dies.
        self._stderr = stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _kill)
        self._process = subprocess.Popen(
            self.command(),
            cwd=self.workdir(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            # Its own process group: stop() ends the node and any child it spawned.
            start_new_session=True,
        )
        # A test run that dies without stop() must not leave nodes behind.
        atexit.register(self._kill)
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                stderr.seek(0)
                err = stderr.read().decode(errors="replace")
                self._kill()
                raise RuntimeError(f"{self.name} exited with {code}: {err.strip()[-2000:]}")
            try:
                self.rpc("eth_chainId")
                break
            except (httpx.HTTPError, ValueError):  # not listening yet, or not answering JSON yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"{self.name} did not answer on {self.url} in {timeout}s") from None
                time.sleep(0.05)
        self.account = self.rpc("eth_accounts")[0]
        self.after_start()

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 5 s) and release the port."""
        self._kill()
        self._http.close()
        self.cleanup()

    def restart(self, timeout: float = 60.0) -> None:
        """Replace the node by a fresh one on the same port: a new chain from block 0.

        Filters, snapshots and code of the old chain are gone (install the
        emitter again). Waits for the port to be free before starting, so the
        new process can bind it, and for the new node to answer.
        """
        self._kill()
        self._http.close()
        deadline = time.monotonic() + timeout
        while not _port_free(self.port):
            if time.monotonic() > deadline:
                raise TimeoutError(f"port {self.port} still taken {timeout}s after {self.name} stopped")
            time.sleep(0.05)
        self.start(max(deadline - time.monotonic(), 5.0))

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _kill(self) -> None:
        process, self._process = self._process, None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if process is None:
            return
        atexit.unregister(self._kill)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    # --- JSON-RPC ---

    def rpc(self, method: str, *params: Any) -> Any:
        """Call ``method``; an error answer raises ``RuntimeError`` naming it."""
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}
        answer = self._http.post(self.url, json=body).json()
        if "error" in answer:
            raise RuntimeError(f"{method} failed: {answer['error']}")
        return answer["result"]

    # --- chain helpers ---

    def install_emitter(self, address: str) -> None:
        """Put the log emitter's code at ``address`` (the Nexus address, usually)."""
        self.rpc(self.set_code_method, address, EMITTER_CODE)

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` blocks (with whatever transactions are pending in the first)."""
        for _ in range(blocks):
            self.rpc("evm_mine")

    def set_automine(self, enabled: bool) -> None:
        """Mine each transaction as it is sent (True), or only on :meth:`mine` (False)."""
        self.rpc("evm_setAutomine", enabled)

    @contextlib.contextmanager
    def one_block(self) -> Iterator[None]:
        """Every transaction sent inside the block goes into one block, mined on exit."""
        self.set_automine(False)
        try:
            yield
            self.mine(1)
        finally:
            self.set_automine(True)

    def snapshot(self) -> str:
        """Snapshot the chain; :meth:`revert` goes back to it (once: the id is then spent)."""
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        if self.rpc("evm_revert", snapshot_id) is not True:
            raise RuntimeError(f"{self.name} did not revert to snapshot {snapshot_id}")

    def emit(self, nexus: str, event: str, *values: Any) -> str:
        """Send a transaction that makes the emitter log ``event`` with ``values``; return its hash."""
        return str(self.rpc("eth_sendTransaction", self.emit_request(nexus, event, *values)))

    def emit_request(self, nexus: str, event: str, *values: Any) -> dict[str, str]:
        """The transaction request :meth:`emit` sends (for anvil_reorg and the like)."""
        # An explicit gas limit: no estimate round trip, and no estimate against
        # a pending state that differs between nodes while mining is held.
        data = event_calldata(event, *values)
        return {"from": self.account, "to": nexus, "data": data, "gas": "0x30000"}

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
    """Calldata for the emitter: topic0 of ``event`` followed by its ABI-encoded fields.

    The emitter logs one topic (``LOG1``): an event with indexed fields cannot be sent through it.
    """
    from ogpu.events._codec.encode import encode_event  # eth-abi (pydantic) loads when something is sent

    topics, data = encode_event(event, *values)
    if len(topics) != 1:
        raise ValueError(f"{event} has indexed fields; the log emitter logs topic0 only")
    return topics[0] + data[2:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    """Whether a new server can bind ``port`` (servers set SO_REUSEADDR, so TIME_WAIT is no obstacle)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cache_dirs(tool: str) -> list[Path]:
    """Where ``make`` installs ``tool``: ``.cache/<tool>`` under the current directory or the checkout."""
    roots = dict.fromkeys([Path.cwd(), Path(__file__).resolve().parents[3]])
    return [root / ".cache" / tool for root in roots]
