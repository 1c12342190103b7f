"""A few seeds of the random soak (tests/soak.py) on every run; ``make faults`` runs hundreds."""

from __future__ import annotations

import pytest

from tests.soak import run_seed

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_soak_seed_neither_loses_nor_repeats(seed: int) -> None:
    result = await run_seed(seed)
    # Exactly once; chain order is asked of the fault-free runs below only
    # (`make faults` reports every seed out of order too).
    assert result.exact, result.summary()


@pytest.mark.parametrize("seed", [6, 7])
async def test_soak_without_faults_passes_so_its_judging_is_sound(seed: int) -> None:
    # The same churn of watchers and mining, no fault: a failure here is the
    # soak's own mistake (or a loss with no fault at all).
    result = await run_seed(seed, faults=())
    assert result.ok, result.summary()
