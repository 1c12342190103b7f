"""Run the simulation: ``python -m tests.sim --seed 148 -v`` replays one seed, ``--seeds N`` runs many.

Seeds from 1,000,000 on are the multi-endpoint family (``tests/sim/endpoints.py``):
``--endpoints --seeds 2000`` runs its first 2,000.

Run from the repository root. One seed prints its verdict (and with ``-v``
every fault as it fires and the stream's log, on virtual time); many seeds
print one summary line and, for each failing seed, its verdict and the
command that replays it. Exits 1 if any seed failed.
"""

from __future__ import annotations

import argparse
import sys

from tests.sim.endpoints import ENDPOINT_SEEDS_FROM
from tests.sim.runner import run_many, summary_line
from tests.sim.scenario import FAULTS, KNOWN_FAILURES_FILE, STEPS, run_seed, write_known_failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, help="replay this one seed")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="with --seed: faults and the stream's log"
    )
    parser.add_argument("--seeds", type=int, default=100, metavar="N", help="seeds to run (default 100)")
    parser.add_argument("--from", dest="first", type=int, default=1, metavar="SEED", help="first seed")
    parser.add_argument(
        "--endpoints",
        action="store_true",
        help=f"the multi-endpoint family: --from counts from seed {ENDPOINT_SEEDS_FROM:,}",
    )
    parser.add_argument("--jobs", type=int, default=2, metavar="N", help="processes (default 2)")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"schedule steps per seed (default {STEPS})")
    parser.add_argument(
        "--digest", action="store_true", help="with --seed: print the transcript's sha256 only"
    )
    parser.add_argument(
        "--faults",
        metavar="KINDS",
        help=f"comma-separated fault kinds to throw (default all: {','.join(FAULTS)}; empty: none)",
    )
    parser.add_argument(
        "--write-known",
        action="store_true",
        help="write the failing seeds to tests/sim/known_failures.txt (the in-suite test's list)",
    )
    args = parser.parse_args(argv)
    faults = None if args.faults is None else [kind for kind in args.faults.split(",") if kind]
    if args.endpoints and args.first < ENDPOINT_SEEDS_FROM:
        args.first += ENDPOINT_SEEDS_FROM - 1
    if args.seed is not None:
        result = run_seed(args.seed, steps=args.steps, echo=args.verbose and not args.digest, faults=faults)
        if args.digest:
            print(result.digest)
            return 0
        print(result.summary(limit=200))
        print(f"    {result.virtual_seconds:.1f} virtual seconds; transcript sha256 {result.digest}")
        return 0 if result.ok else 1
    totals = run_many(
        range(args.first, args.first + args.seeds), jobs=args.jobs, steps=args.steps, faults=faults
    )
    print(summary_line(totals))
    if args.write_known:
        write_known_failures(totals.failed, range(args.first, args.first + args.seeds))
        print(f"wrote {len(totals.failed)} seeds to {KNOWN_FAILURES_FILE}")
        return 0
    return 0 if totals.ok else 1


if __name__ == "__main__":
    sys.exit(main())
