"""A few seeds of the anvil soak (tests/support/anvilsoak.py) on every run; ``make faults`` runs more."""

from __future__ import annotations

import pytest

from ogpu.events._devnode.nodes import Anvil
from tests.support.anvilsoak import run_anvil_seed

pytestmark = pytest.mark.anyio


@pytest.mark.slow
async def test_anvil_soak_seeds_neither_lose_nor_repeat(anvil: Anvil) -> None:
    # One node for both: each seed reverts to the snapshot it took at its start.
    for seed in (1, 3):
        result = await run_anvil_seed(seed, anvil.url)
        # Exactly once; order under recovery as README says (the control below asks it).
        assert result.exact, result.summary()


async def test_anvil_soak_without_faults_passes_so_its_judging_is_sound(anvil: Anvil) -> None:
    # The same churn of watchers, events and mining, no fault and no reorg: a
    # failure here is the soak's own mistake (or a loss with no fault at all).
    result = await run_anvil_seed(3, anvil.url, steps=60, faults=frozenset())
    assert result.ok, result.summary()
