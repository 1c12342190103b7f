"""Print the fault matrix: every fault scenario against a local anvil, events sent vs. delivered.

Run from the repository root (``make faults``)::

    .venv/bin/python scripts/fault_matrix.py [-v] [-k SUBSTRING] [--soak N] [--soak-from SEED]
        [--anvil-soak N] [--anvil-soak-from SEED]

Then runs ``N`` seeds (default 200; 0 skips it) of the in-memory random soak
(``tests/soak.py``), and ``N`` seeds (default 5; 0 skips it) of the same kind
of soak on anvil through the fault proxy (``tests/anvilsoak.py``, a few
seconds each), printing each failing seed and a summary line for each.

Exits 1 if any scenario lost or repeated an event, delivered out of order,
ended with an error, left a filter installed, or never saw its fault fire
(so proved nothing), or if any soak seed (in memory or on anvil) failed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ogpu.events._devnode import Anvil
from tests.anvilsoak import run_anvil_seed
from tests.faultscenarios import ISSUE8_SCENARIOS, SCENARIOS, Outcome, run_scenario
from tests.soak import FAULTS, SoakResult, run_seed

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


async def _soak(seeds: range, faults: tuple[str, ...]) -> list[SoakResult]:
    results = []
    for seed in seeds:
        result = await run_seed(seed, faults=faults)
        if not result.ok:
            print(f"soak FAILED: {result.summary()}", file=sys.stderr)
        results.append(result)
    return results


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
        "--soak", type=int, default=200, metavar="N", help="random soak seeds to run (0: none)"
    )
    parser.add_argument("--soak-from", type=int, default=1, metavar="SEED", help="first soak seed")
    parser.add_argument(
        "--soak-faults",
        default=",".join(FAULTS),
        metavar="KINDS",
        help=f"comma-separated soak faults (default all: {','.join(FAULTS)}; empty: none)",
    )
    parser.add_argument(
        "--anvil-soak", type=int, default=5, metavar="N", help="anvil soak seeds to run (0: none)"
    )
    parser.add_argument(
        "--anvil-soak-from", type=int, default=1, metavar="SEED", help="first anvil soak seed"
    )
    parser.add_argument("--no-matrix", action="store_true", help="no fault matrix on anvil")
    args = parser.parse_args()
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
    soak_failed = 0
    if args.soak > 0:
        kinds = tuple(k for k in args.soak_faults.split(",") if k)
        results = asyncio.run(_soak(range(args.soak_from, args.soak_from + args.soak), kinds))
        soak_failed = sum(1 for r in results if not r.ok)
        print(
            f"soak: {len(results)} seeds, lost {sum(r.lost for r in results)}, "
            f"repeated {sum(r.repeated for r in results)}, extra {sum(r.extra for r in results)}, "
            f"out of order {sum(r.disordered for r in results)}; {soak_failed} seeds failed"
        )
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
    return 1 if bad or soak_failed or anvil_failed else 0


if __name__ == "__main__":
    sys.exit(main())
