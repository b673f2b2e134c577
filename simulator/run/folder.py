"""The run folder's layout: where each file of a run lives, and its creation.

<out>/<scenario>/<timestamp>/
    scenario.yaml                  the resolved scenario (all defaults filled in)
    run.json                       methods, seeds and checkpoint interval of the run
    recorded.json                  task, metric, shift onsets, methods' roles
                                   (``simulator.run.recorded``)
    provenance.json, run.log       where the numbers came from; what the terminal showed
    fleet/seed<N>.csv              the simulated devices' profiles
    metrics/<method>__seed<N>.jsonl  one JSON row per round / evaluation tick
    checkpoints/<method>__seed<N>.pt  the latest checkpoint of an unfinished run
    summary.json, summary.csv      written at the end (and on an interruption)
    report.html, report.md, plots/ written by ``simulate`` and ``simulate report``
    .writer.lock                   held by the one process writing the folder
                                   (``simulator.run.lock``)
"""

from __future__ import annotations

import csv
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from simulator.catalog.errors import UserError
from simulator.scenario.schema import Scenario
from simulator.world.fleet import DeviceProfile, build_fleet


def metrics_path(folder: Path, method: str, seed: int) -> Path:
    return folder / "metrics" / f"{method}__seed{seed}.jsonl"


def checkpoint_path(folder: Path, method: str, seed: int) -> Path:
    return folder / "checkpoints" / f"{method}__seed{seed}.pt"


def final_state_path(folder: Path, method: str, seed: int) -> Path:
    """Where ``--keep-final`` puts a method-seed's end state (a checkpoint's format)."""
    return folder / "final" / f"{method}__seed{seed}.pt"


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


def write_fleet(folder: Path, scenario: Scenario, seed: int) -> list[DeviceProfile]:
    """The simulated devices' profiles (``fleet/seed<N>.csv``), for reports on the fleet;
    returns them."""
    path = folder / "fleet" / f"seed{seed}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    profiles = build_fleet(scenario, seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(profiles[0])))
        writer.writeheader()
        writer.writerows(asdict(p) for p in profiles)
    return profiles
