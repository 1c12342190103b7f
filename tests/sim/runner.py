"""Many seeds over a few processes, their failures printed as they come, one summary line at the end."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sys
import time
from collections.abc import Iterable, Iterator

from tests.sim.scenario import STEPS, SeedResult, run_seed

__all__ = ["Totals", "run_many", "run_results", "summary_line"]


@dataclasses.dataclass
class Totals:
    seeds: int = 0
    seconds: float = 0.0
    lost: int = 0
    repeated: int = 0
    out_of_order: int = 0
    foreign: int = 0
    unnamed: int = 0
    errors: int = 0
    leaked: int = 0
    failed: list[int] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.seeds > 0 and not self.failed

    def add(self, result: SeedResult) -> None:
        self.seeds += 1
        self.lost += result.lost
        self.repeated += result.repeated
        self.out_of_order += result.out_of_order
        self.foreign += result.foreign
        self.unnamed += result.unnamed
        self.errors += result.errors
        self.leaked += result.leaked
        if not result.ok:
            self.failed.append(result.seed)


def _one(job: tuple[int, int, tuple[str, ...] | None]) -> SeedResult:
    seed, steps, faults = job
    return run_seed(seed, steps=steps, faults=faults)


def run_many(
    seeds: Iterable[int], *, jobs: int = 2, steps: int = STEPS, faults: Iterable[str] | None = None
) -> Totals:
    """Run ``seeds`` over ``jobs`` processes; print each failing seed's verdict to stderr as it comes."""
    totals = Totals()
    started = time.perf_counter()
    kinds = None if faults is None else tuple(faults)
    work = [(seed, steps, kinds) for seed in seeds]
    if jobs <= 1:
        results: Iterable[SeedResult] = map(_one, work)
        for result in results:
            _collect(totals, result)
    else:
        for result in _pool_map(work, jobs):
            _collect(totals, result)
    totals.seconds = time.perf_counter() - started
    totals.failed.sort()
    return totals


def run_results(seeds: Iterable[int], *, jobs: int = 2, steps: int = STEPS) -> dict[int, SeedResult]:
    """Every seed's result, by seed (for tests, which judge each seed against a list)."""
    work: list[tuple[int, int, tuple[str, ...] | None]] = [(seed, steps, None) for seed in seeds]
    results = map(_one, work) if jobs <= 1 else _pool_map(work, jobs)
    return {result.seed: result for result in results}


def _pool_map(work: list[tuple[int, int, tuple[str, ...] | None]], jobs: int) -> Iterator[SeedResult]:
    # fork where there is one: the workers inherit the imported library, so
    # starting them costs nothing; spawn elsewhere.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(jobs, maxtasksperchild=500) as pool:
        yield from pool.imap_unordered(_one, work, chunksize=8)


def _collect(totals: Totals, result: SeedResult) -> None:
    totals.add(result)
    if not result.ok:
        print(f"simulation FAILED: {result.summary()}", file=sys.stderr, flush=True)


def summary_line(totals: Totals) -> str:
    rate = totals.seeds / totals.seconds if totals.seconds else 0.0
    line = (
        f"simulation: {totals.seeds} seeds in {totals.seconds:.0f} s ({rate:.1f} seeds/s), "
        f"lost {totals.lost}, repeated {totals.repeated}, out of order {totals.out_of_order}, "
        f"foreign {totals.foreign}, unnamed {totals.unnamed}, raised {totals.errors}, "
        f"leaked {totals.leaked}; "
        f"{len(totals.failed)} seeds failed"
    )
    if totals.failed:
        shown = ", ".join(map(str, totals.failed[:50])) + (" ..." if len(totals.failed) > 50 else "")
        line += f": {shown}\nreplay one with: .venv/bin/python -m tests.sim --seed SEED -v"
    return line
