"""A few seeds of the random soak (tests/soak.py) on every run; ``make faults`` runs hundreds."""

from __future__ import annotations

import pytest

from tests.soak import run_seed

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_soak_seed_neither_loses_nor_repeats(seed: int) -> None:
    result = await run_seed(seed)
    assert result.ok, result.summary()
