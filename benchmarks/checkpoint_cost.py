"""What checkpoints cost a run: wall time per checkpoint, file size, devices asked.

Runs each method of a scenario once with checkpoints every N rounds and
times every checkpoint (asking the touched devices for their state through
the engine, encoding it, writing the file atomically). Prints one line per
method with the mean and largest checkpoint time, the largest file and how
many device states it held, and the share of the run's wall time spent on
checkpoints. Usage:

    python benchmarks/checkpoint_cost.py [--scenario scenarios/lowbandwidth.yaml]
        [--engine ray|inline] [--every 10] [--budget 0.05] [--methods fedavg,persona]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from simulator.cli import with_methods
from simulator.engine.loop_state import LoopSnapshot
from simulator.run.checkpoints import Checkpointer
from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import run_plan
from simulator.scenario.loading import load_scenario


def measure(
    scenario_path: str, engine: str | None, every: int, budget: float | None, methods: list[str]
) -> None:
    overrides = [f"engine.kind={engine}"] if engine else []
    scenario = with_methods(load_scenario(scenario_path, overrides), methods, scenario_path)
    timings: dict[str, list[float]] = {m: [] for m in methods}
    sizes: dict[str, list[tuple[int, int]]] = {m: [] for m in methods}
    original_cost = Checkpointer.record_cost
    original_save = Checkpointer.save

    def timed(self: Checkpointer, seconds: float) -> None:  # gathering + writing
        original_cost(self, seconds)
        timings[self.path.name.split("__")[0]].append(seconds)

    def sized(self: Checkpointer, snapshot: LoopSnapshot) -> None:
        original_save(self, snapshot)
        method = self.path.name.split("__")[0]
        sizes[method].append((self.path.stat().st_size, len(snapshot.devices)))

    Checkpointer.record_cost = timed  # type: ignore[method-assign]
    Checkpointer.save = sized  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as out:
        plan = RunPlan(scenario, methods, [scenario.seed], Path(out), every, budget)
        folder = run_plan(plan, show_progress=False)
        print(
            f"{scenario.name}: {scenario.fleet.devices} devices, engine {scenario.engine.kind}, "
            f"checkpoint every {every} rounds, budget {budget or 'none'}"
        )
        print(
            f"{'method':<12}{'checkpoints':>12}{'mean s':>9}{'max s':>9}"
            f"{'max MB':>9}{'devices':>9}{'share of run':>14}"
        )
        for method in methods:
            end = next(
                r
                for r in read_rows(metrics_path(folder, method, scenario.seed))
                if r["kind"] == "end"
            )
            spent = timings[method]
            biggest = max(sizes[method], default=(0, 0))
            share = sum(spent) / end["wall_s"] if end["wall_s"] else 0.0
            mean = sum(spent) / len(spent) if spent else 0.0
            print(
                f"{method:<12}{len(spent):>12}{mean:>9.2f}{max(spent, default=0.0):>9.2f}"
                f"{biggest[0] / 1e6:>9.1f}{biggest[1]:>9}{share:>13.1%}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/lowbandwidth.yaml")
    parser.add_argument("--engine", choices=["inline", "ray"])
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--budget", type=float, default=0.05, help="share of wall time; 1: none")
    parser.add_argument("--methods", default="fedavg,persona")
    args = parser.parse_args()
    budget = None if args.budget >= 1 else args.budget
    measure(args.scenario, args.engine, args.every, budget, args.methods.split(","))


if __name__ == "__main__":
    main()
