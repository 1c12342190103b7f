"""Shared fixtures: the anyio backend, a clean ChainConfig, and anvil nodes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ogpu import ChainConfig
from ogpu.events._devnode import Anvil

NEXUS = ChainConfig.get_contract_address("NEXUS", "mainnet")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def clean_chain_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts on mainnet defaults with no OGPU_* environment."""
    monkeypatch.delenv("OGPU_RPC_URL", raising=False)
    monkeypatch.delenv("OGPU_CHAIN", raising=False)
    ChainConfig._current = None
    ChainConfig._rpc_overrides.clear()
    yield
    ChainConfig._current = None
    ChainConfig._rpc_overrides.clear()


def _start_node() -> Anvil:
    node = Anvil()
    node.start()
    node.install_emitter(NEXUS)
    return node


@pytest.fixture(scope="session")
def shared_anvil() -> Iterator[Anvil]:
    """One anvil for the session, emitter at the mainnet Nexus address.

    Tests on it scope their watchers to fresh random addresses, so they do
    not see each other's events. Tests that rewrite history use ``anvil``.
    """
    node = _start_node()
    yield node
    node.stop()


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    """A node of this test's own, for reorgs, reverts and automine changes."""
    node = _start_node()
    yield node
    node.stop()


@pytest.fixture
def node(shared_anvil: Anvil) -> Anvil:
    """The shared node, with ChainConfig pointed at it."""
    ChainConfig.set_rpc(shared_anvil.url)
    return shared_anvil
