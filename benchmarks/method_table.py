"""The methods-by-scenario table: means over seeds and paired differences against static.

For each scenario, runs every method of the scenario for ``--seeds`` seeds
(reported seeds: the scenario's seed and the ones after it; tuning seeds are
elsewhere) and prints, per method: mean ``acc_pre_shift``, ``acc_post_shift``,
``acc_mean`` and ``acc_worst10`` over seeds; bytes per device-round; device
energy; and the paired difference against ``static`` on ``acc_mean`` and
``acc_post_shift`` with its 95% t interval (over the per-seed paired
differences, from the run's ``paired.csv``) and the verdict. Usage:

    python benchmarks/method_table.py --seeds 5 --scenarios scenarios/lowbandwidth.yaml
    python benchmarks/method_table.py --seeds 3            # every shipped scenario
    python benchmarks/method_table.py --seeds 5 --scenarios scenarios/lowbandwidth.yaml \\
        --methods static,persona,persona-noedit --params-from persona   # an ablation

``--engine`` picks the engine (inline by default; all engines give the same
numbers). The table is also written as ``table-<scenario>.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from simulator.cli import with_methods
from simulator.run.paired import references
from simulator.run.plan import RunPlan
from simulator.run.runner import run_plan
from simulator.scenario.loading import load_scenario
from strategies.registry import declared_roles

COLUMNS = (
    "acc_pre_shift",
    "acc_post_shift",
    "acc_post_known",
    "acc_post_unknown",
    "acc_mean",
    "acc_worst10",
)


def _paired(folder: Path) -> dict[tuple[str, str, str], dict]:
    path = folder / "paired.csv"
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        return {(r["metric"], r["method"], r["reference"]): r for r in csv.DictReader(handle)}


def _interval(row: dict | None) -> str:
    if row is None:
        return "-"
    d, lo, hi = (100 * float(row[k]) for k in ("difference", "low", "high"))
    return f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}] {row['verdict']}"


def table(folder: Path, methods: list[str], reference: str = "static") -> list[str]:
    """Markdown lines: one row per method (accuracies in %, paired differences in points)."""
    summary = json.loads((folder / "summary.json").read_text())
    paired = _paired(folder)
    head = [
        "method",
        *COLUMNS,
        "bytes/device-round",
        "J/device",
        f"acc_mean vs {reference}",
        f"acc_post_shift vs {reference}",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in methods:
        rows = [r for r in summary if r["method"] == method]

        def mean(key: str, rows: list[dict] = rows) -> float:
            values = [float(r[key]) for r in rows if r[key] is not None]
            return float(np.mean(values)) if values else float("nan")

        cells = [
            method,
            *(f"{100 * mean(c):.1f}" for c in COLUMNS),
            f"{mean('bytes_per_device_round'):,.0f}",
            f"{mean('energy_j_per_device'):.1f}",
            _interval(paired.get(("acc_mean", method, reference))),
            _interval(paired.get(("acc_post_shift", method, reference))),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    shipped = sorted(str(p) for p in Path(__file__).parent.parent.glob("scenarios/*.yaml"))
    parser.add_argument("--scenarios", nargs="+", default=shipped)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--methods", default="", help="comma-separated methods (default: the scenario's)"
    )
    parser.add_argument(
        "--params-from",
        default="",
        help="give methods the scenario does not list this listed method's params "
        "(an ablation then differs from its parent only in what it removes)",
    )
    parser.add_argument("--engine", default="inline", choices=("inline", "ray", "flower"))
    parser.add_argument("--out", default="/tmp/persona-fleet-tables")
    args = parser.parse_args()
    for path in args.scenarios:
        scenario = load_scenario(path, [*args.overrides, f"engine.kind={args.engine}"])
        methods = [m.name for m in scenario.methods]
        if args.methods:
            methods = args.methods.split(",")
            scenario = with_methods(scenario, methods, path, args.params_from or None)
        seeds = [scenario.seed + i for i in range(args.seeds)]
        folder = run_plan(RunPlan(scenario, methods, seeds, Path(args.out)), show_progress=False)
        lines = table(folder, methods)
        roles = declared_roles(methods)
        for parent in references(roles):  # a method run beside its ablations
            ablations = [m for m, r in roles.items() if r["variant_of"] == parent]
            if ablations:
                lines += ["", *table(folder, ablations, reference=parent)]
        text = "\n".join(
            [f"### {scenario.name}: {len(seeds)} seeds ({scenario.fleet.devices} devices)", *lines]
        )
        print(f"\n{text}\n({folder})", flush=True)
        (Path(args.out) / f"table-{scenario.name}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
