"""Run a scenario: every method for every seed, into one run folder.

The folder (``<out>/<scenario>/<timestamp>/``) gets the resolved scenario
first, then one append-only metrics file per method and seed as the run goes,
and the summary at the end. If the run is interrupted, the summary is still
written from whatever rows are on disk.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import yaml
from flwr.app import ArrayRecord
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from simulator.engines import run_engine
from simulator.errors import UserError
from simulator.fleet import build_fleet
from simulator.results import MetricsLog
from simulator.rounds import RoundDriver
from simulator.scenario import Scenario, scenario_to_document
from simulator.summary import summarize_file, write_summary
from simulator.world import World, WorldSpec, pretrain_for


@dataclass(frozen=True)
class RunPlan:
    """What to run: which methods, which seeds, where."""

    scenario: Scenario
    methods: list[str]
    seeds: list[int]
    out_dir: Path


def write_fleet(folder: Path, scenario: Scenario, seed: int) -> None:
    """The simulated devices' profiles (``fleet/seed<N>.csv``), for reports on the fleet."""
    path = folder / "fleet" / f"seed{seed}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    profiles = build_fleet(scenario, seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(profiles[0])))
        writer.writeheader()
        writer.writerows(asdict(p) for p in profiles)


def metrics_path(folder: Path, method: str, seed: int) -> Path:
    return folder / "metrics" / f"{method}__seed{seed}.jsonl"


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


@contextmanager
def progress_bar(enabled: bool, console: Console) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sim {task.fields[sim]}"),
        TextColumn("acc {task.fields[acc]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        yield progress


def summarize_folder(folder: Path, plan: RunPlan) -> list[dict]:
    """Summary rows for every method-seed file present in ``folder``."""
    scenario = plan.scenario
    onsets = [s.onset_s for s in scenario.shifts]
    rows = []
    for seed in plan.seeds:
        for method in plan.methods:
            path = metrics_path(folder, method, seed)
            if path.exists():
                rows.append(
                    summarize_file(
                        path,
                        method,
                        seed,
                        scenario.fleet.devices,
                        onsets,
                        scenario.rounds.horizon_s,
                        scenario.rounds.recovery_tolerance,
                    )
                )
    write_summary(rows, folder)
    return rows


def _show_method_logs(console: Console) -> None:
    """Methods log what a user should see (e.g. Persona's cache key) to ``persona_fleet``."""
    logger = logging.getLogger("persona_fleet")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        handler = RichHandler(console=console, show_time=False, show_path=False)
        logger.addHandler(handler)


def run_plan(plan: RunPlan, show_progress: bool = True, console: Console | None = None) -> Path:
    """Run every method for every seed; returns the run folder."""
    console = console or Console(stderr=True)
    logging.getLogger("flwr").setLevel(logging.ERROR)  # no per-round INFO lines
    _show_method_logs(console)
    scenario = plan.scenario
    folder = create_run_folder(plan.out_dir, scenario.name)
    document = scenario_to_document(scenario)
    (folder / "scenario.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    scenario_json = json.dumps(document, sort_keys=True)
    try:
        with progress_bar(show_progress, console) as progress:
            for seed in plan.seeds:
                write_fleet(folder, scenario, seed)
                pretrained, key = pretrain_for(scenario, seed)
                console.print(f"pretrained model (seed {seed}): cache key {key}", highlight=False)
                for method in plan.methods:
                    spec = WorldSpec(scenario_json, seed, method, str(pretrained))
                    _run_one(spec, folder, progress)
    finally:
        summarize_folder(folder, plan)
    _build_report(folder, console)
    return folder


def _build_report(folder: Path, console: Console) -> None:
    """Plots and report at the end of a run; a report failure never loses results."""
    from reports.build import build_report

    try:
        build_report(folder)
    except Exception as error:  # the results are on disk; the report can be rebuilt
        console.print(
            f"warning: report not built ({type(error).__name__}: {error}); "
            f"rebuild it with: simulate report {folder}",
            highlight=False,
            markup=False,
        )


def _run_one(spec: WorldSpec, folder: Path, progress: Progress | None) -> None:
    world = World.get(spec)
    rounds = world.scenario.rounds
    task = None
    if progress is not None:
        task = progress.add_task(
            f"{spec.method} seed {spec.seed}", total=rounds.count, sim="0s", acc="-"
        )

    def on_progress(round_index: int, clock_s: float, accuracy: float | None) -> None:
        if progress is not None and task is not None:
            progress.update(
                task,
                completed=round_index,
                sim=f"{clock_s:,.0f}s",
                acc="-" if accuracy is None else f"{accuracy:.3f}",
            )

    initial = ArrayRecord(world.pretrained)
    started = time.perf_counter()
    with MetricsLog(metrics_path(folder, spec.method, spec.seed)) as log:
        driver = RoundDriver(world, world.method.cloud, initial, log, on_progress)
        run_engine(world.scenario.engine, spec, len(world.fleet), driver.run)
    if progress is not None and task is not None:
        progress.update(
            task,
            completed=rounds.count,
            description=f"{spec.method} seed {spec.seed} ({time.perf_counter() - started:.0f}s)",
        )
