"""The project as a Flower App: the cloud's ServerApp, running a plan on a real SuperLink.

Flower starts this ServerApp on the SuperLink's machine for each run it is
given, from the app's files (``[tool.flwr.app]`` in pyproject.toml); it
grants the SuperLink's Grid to the ``deployment`` engine and runs the plan
exactly as ``simulate`` does (rows, checkpoints, summary, report data), in a
run folder on that machine. Two ways in:

- ``simulate SCENARIO --set engine.kind=deployment --set engine.superlink=...``
  submits the run it planned (``submission``: scenario, methods, seeds and the
  folder it reserved) and follows the run's log;
- ``flwr run . CONNECTION`` uses the app's config: ``scenario`` (a file, relative
  to the app's folder), ``set`` (overrides, separated by ``;``) and ``out``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from simulator.catalog.errors import UserError
from simulator.engine.superlink import granted_grid
from simulator.run.app_config import (
    APP_ROOT,
    OUT,
    OVERRIDES,
    RESERVATION_FILE,
    SCENARIO,
    SUBMISSION,
)
from simulator.run.end_table import end_of_run_table
from simulator.run.plan import RunPlan
from simulator.run.reader import load_run
from simulator.run.runner import resume_run, run_plan
from simulator.scenario.loading import load_scenario, parse_scenario

DEPLOYED = "engine.kind=deployment"

cloud_app = ServerApp()


@cloud_app.main()
def _cloud(grid: Grid, context: Context) -> None:
    logging.getLogger("persona_fleet").setLevel(logging.INFO)
    with granted_grid(grid):
        submission = str(context.run_config.get(SUBMISSION, ""))
        if submission:
            folder = run_submission(json.loads(submission))
        else:
            folder = run_app_config(dict(context.run_config))
    print(end_of_run_table(load_run(folder)))
    print(f"results: {folder}")


def run_submission(submission: dict[str, Any]) -> Path:
    """Run (or resume) what ``simulate`` submitted, in the folder it reserved."""
    if submission.get("resume"):
        return resume_run(Path(submission["resume"]), show_progress=False)
    scenario = parse_scenario(submission["scenario"], "the submitted scenario")
    folder = Path(submission["folder"])
    claim(folder, str(submission["token"]))
    plan = RunPlan(
        scenario=scenario,
        methods=list(submission["methods"]),
        seeds=[int(s) for s in submission["seeds"]],
        out_dir=folder.parent.parent,
        checkpoint_every=int(submission["checkpoint_every"]),
        checkpoint_budget=submission["checkpoint_budget"],
        keep_final=bool(submission.get("keep_final", False)),
    )
    return run_plan(plan, show_progress=False, folder=folder)


def claim(folder: Path, token: str) -> None:
    """Take over the folder ``simulate`` reserved; refuse one on another machine's disk."""
    reservation = folder / RESERVATION_FILE
    try:
        found = reservation.read_text()
    except OSError:
        found = None
    if found != token:
        raise UserError(
            f"the run folder {folder} that simulate reserved is not on this SuperLink's "
            "machine: run simulate where the SuperLink runs (it shares the run folder), "
            "or flwr run from another machine"
        )
    reservation.unlink()
    folder.rmdir()  # the runner makes it afresh


def run_app_config(config: dict[str, Any]) -> Path:
    """Run every method and seed of the app config's scenario (``flwr run``)."""
    path = Path(str(config.get(SCENARIO, "")))
    if not path.is_absolute():
        path = APP_ROOT / path
    overrides = [o.strip() for o in str(config.get(OVERRIDES, "")).split(";") if o.strip()]
    scenario = load_scenario(path, [*overrides, DEPLOYED])
    plan = RunPlan(
        scenario=scenario,
        methods=[m.name for m in scenario.methods],
        seeds=[scenario.seed + i for i in range(scenario.seeds)],
        out_dir=Path(str(config.get(OUT) or scenario.output)),
    )
    return run_plan(plan, show_progress=False)
