"""The run folder's layout, and the plan a resumed run reads back from it.

<out>/<scenario>/<timestamp>/
    scenario.yaml                  the resolved scenario (all defaults filled in)
    run.json                       methods, seeds and checkpoint interval of the run
    fleet/seed<N>.csv              the simulated devices' profiles
    metrics/<method>__seed<N>.jsonl  one JSON row per round / evaluation tick
    checkpoints/<method>__seed<N>.pt  the latest checkpoint of an unfinished run
    summary.json, summary.csv, report.html, figures/   written at the end
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.errors import UserError
from simulator.fleet import build_fleet
from simulator.scenario import Scenario

if TYPE_CHECKING:
    from simulator.runner import RunPlan

PLAN_FILE = "run.json"
PLAN_FORMAT = 1


def metrics_path(folder: Path, method: str, seed: int) -> Path:
    return folder / "metrics" / f"{method}__seed{seed}.jsonl"


def checkpoint_path(folder: Path, method: str, seed: int) -> Path:
    return folder / "checkpoints" / f"{method}__seed{seed}.pt"


def create_run_folder(out_dir: Path, scenario_name: str) -> Path:
    """A fresh ``<out>/<scenario>/<timestamp>`` folder (suffixed if the second is taken)."""
    stamp = datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    base = out_dir / scenario_name
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create output folder {base}: {err.strerror}") from None
    for attempt in range(100):
        folder = base / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise UserError(f"cannot create a new run folder under {base}")


def write_fleet(folder: Path, scenario: Scenario, seed: int) -> None:
    """The simulated devices' profiles (``fleet/seed<N>.csv``), for reports on the fleet."""
    path = folder / "fleet" / f"seed{seed}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    profiles = build_fleet(scenario, seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(profiles[0])))
        writer.writeheader()
        writer.writerows(asdict(p) for p in profiles)


def write_plan(folder: Path, plan: RunPlan) -> None:
    """What ``simulate --resume`` needs besides the scenario."""
    document = {
        "format": PLAN_FORMAT,
        "methods": plan.methods,
        "seeds": plan.seeds,
        "checkpoint_every": plan.checkpoint_every,
        "checkpoint_budget": plan.checkpoint_budget,
    }
    (folder / PLAN_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def read_plan(folder: Path) -> dict[str, Any]:
    """The run's plan, or a one-line error naming what is missing or wrong."""
    if not folder.is_dir():
        raise UserError(f"{folder}: no such run folder")
    path = folder / PLAN_FILE
    if not path.is_file() or not (folder / "scenario.yaml").is_file():
        raise UserError(
            f"{folder}: not a resumable run folder (needs scenario.yaml and {PLAN_FILE})"
        )
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
        methods = [str(m) for m in plan["methods"]]
        seeds = [int(s) for s in plan["seeds"]]
        every = int(plan["checkpoint_every"])
        budget = None if plan["checkpoint_budget"] is None else float(plan["checkpoint_budget"])
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: unreadable run plan ({type(err).__name__}: {err})") from None
    if plan.get("format") != PLAN_FORMAT:
        raise UserError(f"{path}: run plan format {plan.get('format')}, expected {PLAN_FORMAT}")
    return {
        "methods": methods,
        "seeds": seeds,
        "checkpoint_every": every,
        "checkpoint_budget": budget,
    }
