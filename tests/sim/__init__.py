"""The deterministic simulation of the shared stream (issue 16): virtual time, seeded faults, an oracle.

``run_seed(seed)`` runs one seed and judges it (``tests/sim/scenario.py``);
``python -m tests.sim --seed N -v`` replays one with its faults and the
stream's log; ``python -m tests.sim --seeds N`` runs many over processes.
"""

from tests.sim.scenario import FAULTS, SeedResult, replay_command, run_seed

__all__ = ["FAULTS", "SeedResult", "replay_command", "run_seed"]
