"""``simulate sweep``: validate the grid, run the cells, write the sweep's table and report.

The driver is the only writer of the sweep's own files: ``sweep.json`` before
anything runs, ``cells/<cell>.error`` for a cell that failed, and at the end
``sweep.csv`` and the report (``reports.sweep``). Cells are resumable one by
one: ``resume_sweep`` keeps finished cells and continues the others from
their checkpoints.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from simulator.catalog.errors import UserError
from simulator.run.lock import writer_lock
from simulator.run.plan import scenario_digest
from simulator.scenario.documents import read_document
from simulator.scenario.loading import parse_scenario
from simulator.scenario.overrides import apply_overrides
from simulator.scenario.schema import Engine, Scenario
from simulator.sweep.execute import INTERRUPTED, CellJob, run_cells
from simulator.sweep.grid import Axis, cell_scenario, check_distinct, expand
from simulator.sweep.state import (
    CellEntry,
    SweepFile,
    cell_done,
    cell_error_path,
    cell_folder,
    check_cells_unchanged,
    read_sweep_file,
    write_sweep_file,
)
from simulator.sweep.table import read_cell, sweep_rows, write_sweep_csv
from simulator.world.build import pretrain_seed
from simulator.world.preflight import preflight
from strategies.registry import method_names

# A rough cost model for --dry-run: the engine's measured cost per device-round on
# 2 cores (benchmarks/engine_overhead.py) and a fixed cost per method-seed run
# (world, evaluation ticks, loading or training cached models).
SECONDS_PER_DEVICE_ROUND = 0.012
SECONDS_PER_RUN = 20.0
SECONDS_PER_PRETRAINING = 45.0  # the starting model, cloud-retrain's and Persona's cloud state


@dataclass(frozen=True)
class SweepRequest:
    """What ``simulate sweep`` was asked to do."""

    source: str
    overrides: list[str]
    axes: list[Axis]
    seeds: int
    methods: list[str] | None
    workers: int
    out: Path


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def plan_sweep(request: SweepRequest) -> tuple[SweepFile, list[Scenario]]:
    """The sweep file and every cell's validated scenario (nothing runs, nothing is written)."""
    base = apply_overrides(read_document(request.source), request.overrides, request.source)
    scenario = parse_scenario(base, request.source)
    if scenario.data.path is not None:  # resolved now, so a resume elsewhere reads the same file
        base = {**base, "data": {**base["data"], "path": scenario.data.path}}
    methods = request.methods or [m.name for m in scenario.methods]
    listed = {m.name for m in scenario.methods}
    unknown = [m for m in methods if m not in listed]
    if unknown:
        known = sorted(listed) if set(unknown) <= set(method_names()) else method_names()
        raise UserError(
            f"--methods: {', '.join(unknown)} not among the scenario's methods "
            f"({', '.join(known)}); add it to the scenario with its settings first"
        )
    cells = expand(request.axes, scenario.seed, request.seeds)
    scenarios = [cell_scenario(base, cell, request.source) for cell in cells]
    for cell, checked in zip(cells, scenarios, strict=True):  # the files and machine, up front
        for note in preflight(checked, f"{request.source} ({cell.name})"):
            print(f"warning: {cell.name}: {note}", file=sys.stderr)
    check_distinct(cells, scenarios)
    sweep = SweepFile(
        format=1,
        source=request.source,
        base=base,
        axes=[(axis.key, list(axis.values)) for axis in request.axes],
        methods=methods,
        sweep_seed=scenario.seed,
        cells=[
            CellEntry(
                index=c.index,
                values=list(c.values),
                seeds=list(c.seeds),
                digest=scenario_digest(s),
            )
            for c, s in zip(cells, scenarios, strict=True)
        ],
    )
    return sweep, scenarios


def estimate_s(sweep: SweepFile, scenarios: list[Scenario], workers: int) -> float:
    """A rough wall-time estimate of the whole sweep on ``workers`` cores."""
    total = 0.0
    pretrainings = set()
    for cell, scenario in zip(sweep.cell_list(), scenarios, strict=True):
        per_round = max(1, round(scenario.rounds.participation * scenario.fleet.devices))
        device_rounds = scenario.rounds.count * per_round * scenario.rounds.overcommit
        per_run = device_rounds * SECONDS_PER_DEVICE_ROUND + SECONDS_PER_RUN
        total += len(cell.seeds) * len(sweep.methods) * per_run
        pretrainings |= {pretrain_seed(scenario, seed) for seed in cell.seeds}
    total += len(pretrainings) * SECONDS_PER_PRETRAINING  # each pretraining seed once (cached)
    return total / max(1, min(workers, len(scenarios)))


def ignored_engine_settings(scenario: Scenario) -> list[str]:
    """The scenario's engine settings a sweep does not use: each cell runs inline in one
    worker (cells are the parallel unit), so shards and CPU counts have no effect."""
    defaults = Engine()
    return [
        f"engine.{key}={getattr(scenario.engine, key)}"
        for key in ("shards", "num_cpus", "cpus_per_device")
        if getattr(scenario.engine, key) != getattr(defaults, key)
    ]


def describe(sweep: SweepFile, scenarios: list[Scenario], workers: int) -> list[str]:
    """The ``--dry-run`` listing: every cell, its seeds, and the time estimate."""
    cells = sweep.cell_list()
    lines = [f"{c.name}: {c.label()} ({_seed_span(c.seeds)})" for c in cells]
    seconds = estimate_s(sweep, scenarios, workers)
    lines.append(
        f"{_count(len(cells), 'cell')} x {_count(len(sweep.methods), 'method')} x "
        f"{_count(len(cells[0].seeds), 'seed')}; about {_duration(seconds)} on "
        f"{_count(workers, 'worker')} (rough: {SECONDS_PER_DEVICE_ROUND * 1000:.0f} "
        f"ms per device-round + {SECONDS_PER_RUN:.0f} s per method-seed run + "
        f"{SECONDS_PER_PRETRAINING:.0f} s per pretraining seed)"
    )
    return lines + _engine_note(scenarios[0])


def _seed_span(seeds: tuple[int, ...]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}..{seeds[-1]}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _duration(seconds: float) -> str:
    """``45 s``, ``12 min`` or ``3.5 h``: an estimate in the unit that reads."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _engine_note(scenario: Scenario) -> list[str]:
    ignored = ignored_engine_settings(scenario)
    if not ignored:
        return []
    return [f"not used in a sweep (each cell runs inline in one worker): {', '.join(ignored)}"]


def _new_folder(out: Path, name: str) -> Path:
    stamp = datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    for attempt in range(100):
        folder = out / name / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise UserError(f"cannot create a new sweep folder under {out / name}")


def start_sweep(request: SweepRequest, cells_on: str, ray_address: str | None) -> Path:
    """Validate every cell, write ``sweep.json``, run the cells, write the results."""
    sweep, scenarios = plan_sweep(request)
    folder = _new_folder(request.out, scenarios[0].name)
    with writer_lock(folder, "sweep"):
        write_sweep_file(folder, sweep)
        return _run(folder, sweep, scenarios, request.workers, cells_on, ray_address)


def resume_sweep(folder: Path, workers: int, cells_on: str, ray_address: str | None) -> Path:
    """Continue a sweep: finished cells are kept, the others resume from their checkpoints.

    A second writer of the folder (another resume, or the sweep itself still
    going) is refused before anything is written.
    """
    read_sweep_file(folder)  # a folder that is no sweep is refused before it is locked
    with writer_lock(folder, "sweep"):
        sweep = read_sweep_file(folder)
        scenarios = [cell_scenario(sweep.base, cell, sweep.source) for cell in sweep.cell_list()]
        check_cells_unchanged(folder, sweep, scenarios)
        return _run(folder, sweep, scenarios, workers, cells_on, ray_address)


def _run(
    folder: Path,
    sweep: SweepFile,
    scenarios: list[Scenario],
    workers: int,
    cells_on: str,
    ray_address: str | None,
) -> Path:
    console = Console(stderr=True)
    for line in _engine_note(scenarios[0]):
        console.print(f"warning: {line}")
    cells = sweep.cell_list()
    (folder / "cells").mkdir(exist_ok=True)
    todo = [
        CellJob(
            cell.name,
            str(cell_folder(folder, cell)),
            scenario.model_dump(mode="json"),
            tuple(sweep.methods),
            cell.seeds,
        )
        for cell, scenario in zip(cells, scenarios, strict=True)
        if not cell_done(folder, cell, sweep.methods)
    ]
    for job in todo:
        Path(job.folder).parent.joinpath(f"{job.name}.error").unlink(missing_ok=True)
    by_name = {cell.name: cell for cell in cells}
    interrupted = []
    columns = (
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("cells"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("cells", total=len(cells), completed=len(cells) - len(todo))

        def done(name: str, error: str | None) -> None:
            progress.advance(task)
            if error == INTERRUPTED:
                interrupted.append(name)
            elif error is not None:
                cell_error_path(folder, by_name[name]).write_text(error + "\n", encoding="utf-8")
                console.print(f"{name}: failed ({error.splitlines()[0]})", highlight=False)

        try:
            run_cells(todo, workers, cells_on, ray_address, done)
        finally:
            finish_sweep(folder, sweep, scenarios)
    if interrupted:
        raise KeyboardInterrupt
    return folder


def finish_sweep(folder: Path, sweep: SweepFile, scenarios: list[Scenario]) -> None:
    """``sweep.csv`` from every finished cell (failed cells listed; the CLI draws the report)."""
    results, failed = [], {}
    for cell, scenario in zip(sweep.cell_list(), scenarios, strict=True):
        error_path = cell_error_path(folder, cell)
        if error_path.is_file():
            failed[cell.name] = error_path.read_text(encoding="utf-8").strip()
        elif cell_done(folder, cell, sweep.methods):
            results.append(read_cell(cell_folder(folder, cell), cell, scenario))
    axes = [key for key, _ in sweep.axes]
    write_sweep_csv(sweep_rows(results, failed), axes, folder / "sweep.csv")
