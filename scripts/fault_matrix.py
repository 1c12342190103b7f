"""Print the fault matrix: every fault scenario against a local anvil, events sent vs. delivered.

Run from the repository root (``make faults``)::

    .venv/bin/python scripts/fault_matrix.py [-v] [-k SUBSTRING] [--sim N] [--sim-from SEED]
        [--jobs N] [--sim-only] [--sim-endpoints N] [--anvil-soak N] [--anvil-soak-from SEED]

Then runs ``N`` seeds (default 10,000; 0 skips it) of the deterministic
simulation (``tests/sim``: the whole stream on virtual time against the
in-memory node, every fault from the seed) over ``--jobs`` processes, and
``N`` seeds (default 5; 0 skips it) of the random soak on anvil through the
fault proxy (``tests/anvilsoak.py``, a few seconds each: the check that the
simulation's node behaves like a real one). Each failing seed is printed
with the command that replays it, then one summary line for each.
``--sim-only`` runs the simulation alone (``make sim``).

Exits 1 if any scenario lost or repeated an event, delivered out of order,
ended with an error, left a filter installed, or never saw its fault fire
(so proved nothing), or if any seed (simulated or on anvil) failed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ogpu.events._devnode.nodes import Anvil
from tests.anvilsoak import run_anvil_seed
from tests.faultscenarios import ISSUE8_SCENARIOS, SCENARIOS, Outcome, run_scenario
from tests.sim import FAULTS
from tests.sim.endpoints import ENDPOINT_FAULTS, ENDPOINT_SEEDS_FROM
from tests.sim.runner import run_many, summary_line
from tests.soak import SoakResult

COLUMNS = ("fault", "sent", "delivered", "lost", "repeated", "in order", "leaked", "faults fired", "seconds")
ALL_SCENARIOS = SCENARIOS + ISSUE8_SCENARIOS


def _row(outcome: Outcome) -> tuple[str, ...]:
    return (
        outcome.name,
        str(len(outcome.sent)),
        str(len(outcome.delivered)),
        str(outcome.lost),
        str(outcome.repeated),
        "yes" if outcome.in_order else "NO",
        str(outcome.leaked),
        str(outcome.fired),
        f"{outcome.seconds:.1f}",
    )


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "| " + " | ".join([first, *rest]) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(COLUMNS), rule, *(line(r) for r in rows)])


async def _run_all(url: str, pick: str | None) -> list[Outcome]:
    outcomes = []
    for scenario in ALL_SCENARIOS:
        if pick and pick.lower() not in scenario.name.lower():
            continue
        outcome = await run_scenario(url, scenario)
        print(f"  {scenario.name}: {len(outcome.delivered)}/{len(outcome.sent)}", file=sys.stderr)
        outcomes.append(outcome)
    return outcomes


async def _anvil_soak(url: str, seeds: range) -> list[SoakResult]:
    results = []
    for seed in seeds:
        started = time.monotonic()
        result = await run_anvil_seed(seed, url)
        seconds = time.monotonic() - started
        if not result.ok:
            print(f"anvil soak FAILED ({seconds:.1f} s): {result.summary()}", file=sys.stderr)
        else:
            print(f"  anvil soak seed {seed}: ok ({seconds:.1f} s)", file=sys.stderr)
        results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show the stream's log")
    parser.add_argument("-k", dest="pick", help="only scenarios whose name contains this")
    parser.add_argument(
        "--sim",
        type=int,
        default=10_000,
        metavar="N",
        help="simulation seeds to run (default 10,000; 0: none)",
    )
    parser.add_argument("--sim-from", type=int, default=1, metavar="SEED", help="first simulation seed")
    parser.add_argument(
        "--sim-endpoints",
        type=int,
        default=2_000,
        metavar="N",
        help="seeds of the multi-endpoint family to run too (from seed 1,000,000; default 2,000; 0: none)",
    )
    parser.add_argument(
        "--sim-faults",
        default=",".join(FAULTS),
        metavar="KINDS",
        help=f"comma-separated simulation faults (default all: {','.join(FAULTS)}; empty: none)",
    )
    parser.add_argument("--jobs", type=int, default=2, metavar="N", help="simulation processes (default 2)")
    parser.add_argument(
        "--sim-only", action="store_true", help="only the simulation: no fault matrix, no anvil soak"
    )
    parser.add_argument(
        "--anvil-soak", type=int, default=5, metavar="N", help="anvil soak seeds to run (0: none)"
    )
    parser.add_argument(
        "--anvil-soak-from", type=int, default=1, metavar="SEED", help="first anvil soak seed"
    )
    parser.add_argument("--no-matrix", action="store_true", help="no fault matrix on anvil")
    args = parser.parse_args()
    if args.sim_only:
        args.no_matrix, args.anvil_soak = True, 0
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    bad: list[Outcome] = []
    if not args.no_matrix:
        with Anvil() as node:
            outcomes = asyncio.run(_run_all(node.url, args.pick))
        print(_table([_row(o) for o in outcomes]))
        faulty = {s.name for s in ALL_SCENARIOS if s.rules}
        bad = [
            o
            for o in outcomes
            if o.lost
            or o.repeated
            or not o.in_order
            or o.error
            or o.leaked
            or (o.name in faulty and not o.fired)
        ]
        for outcome in bad:
            why = outcome.error or ("the fault never fired" if not outcome.fired else "see its row")
            print(f"FAILED: {outcome.name}: {why}", file=sys.stderr)
    sim_failed = 0
    if args.sim > 0:
        kinds = tuple(k for k in args.sim_faults.split(",") if k)
        seeds = range(args.sim_from, args.sim_from + args.sim)
        totals = run_many(seeds, jobs=args.jobs, faults=kinds)
        sim_failed = len(totals.failed)
        print(summary_line(totals))
    if args.sim_endpoints > 0:
        # Several endpoints of one chain, each failing its own way (tests/sim/endpoints.py).
        kinds = (*(k for k in args.sim_faults.split(",") if k), *ENDPOINT_FAULTS)
        seeds = range(ENDPOINT_SEEDS_FROM, ENDPOINT_SEEDS_FROM + args.sim_endpoints)
        totals = run_many(seeds, jobs=args.jobs, faults=kinds)
        sim_failed += len(totals.failed)
        print("endpoints " + summary_line(totals))
    anvil_failed = 0
    if args.anvil_soak > 0:
        seeds = range(args.anvil_soak_from, args.anvil_soak_from + args.anvil_soak)
        with Anvil() as node:
            anvil_results = asyncio.run(_anvil_soak(node.url, seeds))
        anvil_failed = sum(1 for r in anvil_results if not r.ok)
        lost, repeated = sum(r.lost for r in anvil_results), sum(r.repeated for r in anvil_results)
        extra, disordered = sum(r.extra for r in anvil_results), sum(r.disordered for r in anvil_results)
        print(
            f"anvil soak: {len(anvil_results)} seeds, lost {lost}, repeated {repeated}, extra {extra}, "
            f"out of order {disordered}; {anvil_failed} seeds failed"
        )
    return 1 if bad or sim_failed or anvil_failed else 0


if __name__ == "__main__":
    sys.exit(main())
