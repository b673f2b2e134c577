"""Method quality on the shipped scenarios: mean and 95% CI over seeds.

For each scenario, runs every method for ``--seeds`` seeds (inline engine, the
same numbers as Ray) and prints per method: time-averaged accuracy, worst-10%
accuracy, bytes per device-round (up + down), device FLOPs per round and
device backward passes. Usage:

    python benchmarks/persona_quality.py [--seeds 3] [--scenarios FILE ...] [--set KEY=VALUE ...]

(default: every shipped scenario). Add methods to compare with, e.g.,
``--set "methods[3]={name: persona-noproto}"``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reports.statistics import mean_ci95
from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import run_plan
from simulator.scenario.loading import load_scenario


def bytes_per_device_round(path: Path) -> float:
    rounds = [r for r in read_rows(path) if r["kind"] == "round"]
    replied = sum(r["replied"] for r in rounds)
    return sum(r["bytes_up"] + r["bytes_down"] for r in rounds) / replied if replied else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    shipped = sorted(str(p) for p in Path(__file__).parent.parent.glob("scenarios/*.yaml"))
    parser.add_argument("--scenarios", nargs="+", default=shipped)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default="/tmp/persona-fleet-quality")
    args = parser.parse_args()
    for path in args.scenarios:
        scenario = load_scenario(path, [*args.overrides, "engine.kind=inline"])
        methods = [m.name for m in scenario.methods]
        seeds = [scenario.seed + i for i in range(args.seeds)]
        folder = run_plan(RunPlan(scenario, methods, seeds, Path(args.out)), show_progress=False)
        summary = json.loads((folder / "summary.json").read_text())
        print(f"\n{path}: {scenario.fleet.devices} devices, {len(seeds)} seeds ({folder})")
        print(
            f"{'method':<18}{'acc_mean':>18}{'acc_worst10':>18}{'bytes/dev-round':>17}"
            f"{'FLOPs/round':>13}{'backward':>10}"
        )
        for method in methods:
            rows = [r for r in summary if r["method"] == method]
            acc, acc_ci = mean_ci95([r["acc_mean"] for r in rows])
            worst, worst_ci = mean_ci95([r["acc_worst10"] for r in rows])
            moved, _ = mean_ci95(
                [bytes_per_device_round(metrics_path(folder, method, s)) for s in seeds]
            )
            flops, _ = mean_ci95([r["device_flops_per_round"] for r in rows])
            backward = sum(r["device_backward_passes"] for r in rows)
            print(
                f"{method:<18}{acc:>10.4f} ±{acc_ci:<6.4f}{worst:>10.4f} ±{worst_ci:<6.4f}"
                f"{moved:>17,.0f}{flops:>13.3g}{backward:>10}"
            )


if __name__ == "__main__":
    main()
