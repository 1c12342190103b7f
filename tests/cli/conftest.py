"""The command's tests: one anvil per module for those that read a chain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ogpu.events._devnode.nodes import Anvil
from tests.support.fakenode import NEXUS


@pytest.fixture(scope="module")
def chain() -> Iterator[Anvil]:
    """An anvil of this module's own, emitter at the mainnet Nexus address."""
    node = Anvil()
    node.start()
    node.install_emitter(NEXUS)
    yield node
    node.stop()
