"""Shared fixtures: the anyio backend, a clean ChainConfig, and development nodes.

Nodes: ``shared_anvil``/``node``/``anvil`` (anvil only, as most tests need),
and ``dev_node``/``fresh_dev_node``, parametrized over anvil, hardhat and
ganache for the scenarios every node must pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ogpu import ChainConfig
from ogpu.events._devnode.nodes import NODES, Anvil, DevNode, DevNodeNotFoundError
from ogpu.events._stream import lane as _lane

# The Postgres server of the checkpoint tests (fixtures ``postgres``, ``postgres_url``).
pytest_plugins = ["tests.pg_helpers"]

NEXUS = ChainConfig.get_contract_address("NEXUS", "mainnet")
# Nothing set in code yet: what each test starts from.
_UNCONFIGURED = ChainConfig.snapshot()

# Every test runs with the cursor rule checked (off for users): a path that moves
# a lane's cursor over a block no read covered raises at once. Set in the
# environment too, for the CLI and soak subprocesses the tests start.
os.environ["OGPU_CHECK_CURSOR_RULE"] = "1"
_lane.CHECK_CURSOR_RULE = True
NODE_NAMES = tuple(NODES)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def clean_chain_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts on mainnet defaults with no OGPU_* environment."""
    monkeypatch.delenv("OGPU_RPC_URL", raising=False)
    monkeypatch.delenv("OGPU_CHAIN", raising=False)
    ChainConfig.restore(_UNCONFIGURED)
    yield
    ChainConfig.restore(_UNCONFIGURED)


def start_node(name: str = "anvil") -> DevNode:
    """A started node of kind ``name`` with the emitter at the mainnet Nexus address.

    A node that is not installed skips the test, except in CI (``CI=true``),
    where the suite must run against every node and a missing one fails.
    """
    kind = NODES[name]
    try:
        kind.find()
    except DevNodeNotFoundError as exc:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"{name} is required in CI: {exc}")
        pytest.skip(str(exc))
    node = kind()
    node.start()
    node.install_emitter(NEXUS)
    return node


def _start_anvil() -> Anvil:
    node = start_node("anvil")
    assert isinstance(node, Anvil)
    return node


@pytest.fixture(scope="session")
def shared_anvil() -> Iterator[Anvil]:
    """One anvil for the session, emitter at the mainnet Nexus address.

    Tests on it scope their watchers to fresh random addresses, so they do
    not see each other's events. Tests that rewrite history use ``anvil``.
    """
    node = _start_anvil()
    yield node
    node.stop()


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    """A node of this test's own, for reorgs, reverts and automine changes."""
    node = _start_anvil()
    yield node
    node.stop()


@pytest.fixture
def node(shared_anvil: Anvil) -> Anvil:
    """The shared node, with ChainConfig pointed at it."""
    ChainConfig.set_rpc(shared_anvil.url)
    return shared_anvil


@pytest.fixture(scope="session", params=NODE_NAMES)
def shared_dev_node(request: pytest.FixtureRequest) -> Iterator[DevNode]:
    """One node of each kind for the session (hardhat and ganache take a second to start).

    Like ``shared_anvil``: tests scope their watchers to fresh random
    addresses, may hold mining for a moment (``one_block``), and never
    rewrite history or restart it.
    """
    node = start_node(request.param)
    yield node
    node.stop()


@pytest.fixture
def dev_node(shared_dev_node: DevNode) -> DevNode:
    """The session's node of this parameter's kind, with ChainConfig pointed at it."""
    ChainConfig.set_rpc(shared_dev_node.url)
    return shared_dev_node


@pytest.fixture(params=NODE_NAMES)
def fresh_dev_node(request: pytest.FixtureRequest) -> Iterator[DevNode]:
    """A node of this test's own, of each kind, for reorgs, reverts and restarts."""
    node = start_node(request.param)
    ChainConfig.set_rpc(node.url)
    yield node
    node.stop()
