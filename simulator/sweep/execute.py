"""Run a sweep's cells side by side: worker processes on this machine, or Ray tasks.

A cell is an ordinary run (``run_plan``) with the inline engine, one cell per
worker: cells are the unit of parallel work, so nothing inside a cell needs
more than one core. ``--cells-on ray`` sends cells to Ray as tasks of one CPU
each (a local Ray, or the cluster at ``engine.ray_address``); otherwise a
pool of spawned processes runs them. One worker runs cells in this process.
Workers write only their cell's run folder and log; the driver records
errors and writes the sweep's own files.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from simulator.engine.stop import StopRequested
from simulator.run.lock import held_by
from simulator.run.plan import PLAN_FILE, RunPlan
from simulator.run.runner import resume_run, run_plan
from simulator.scenario.loading import parse_scenario

INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class CellJob:
    """What a worker needs to run (or continue) one cell: plain data, picklable."""

    name: str
    folder: str
    document: dict[str, Any]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]


def run_cell(job: CellJob) -> tuple[str, str | None]:
    """Run or continue one cell in this process: ``(name, None)`` or ``(name, why it failed)``.

    A cell whose folder holds a plan continues from its checkpoints (finished
    method-seed runs are kept); a folder without one (killed before it was
    written) starts over.
    """
    folder = Path(job.folder)
    log_path = folder.parent / f"{job.name}.log"
    with log_path.open("a", encoding="utf-8") as log_file:
        console = Console(file=log_file, width=120, force_terminal=False)
        try:
            if (folder / PLAN_FILE).is_file():
                resume_run(folder, show_progress=False, console=console)
            else:
                holder = held_by(folder)  # a worker of a killed sweep may still create it
                if holder is not None:
                    return job.name, f"{folder} is still written by {holder}; stop it, then resume"
                shutil.rmtree(folder, ignore_errors=True)
                scenario = parse_scenario(job.document, source=job.name)
                plan = RunPlan(scenario, list(job.methods), list(job.seeds), folder.parent)
                run_plan(plan, show_progress=False, console=console, folder=folder)
        except (StopRequested, KeyboardInterrupt):
            return job.name, INTERRUPTED
        except Exception as error:  # a failing cell must not stop the sweep
            log_file.write(traceback.format_exc())
            return job.name, f"{type(error).__name__}: {error}"
    return job.name, None


Done = Callable[[str, str | None], None]


def run_cells(
    jobs: list[CellJob], workers: int, cells_on: str, ray_address: str | None, done: Done
):
    """Run every job, calling ``done(name, error)`` in the driver as each cell ends."""
    if not jobs:
        return
    if cells_on == "ray":
        _on_ray(jobs, ray_address, done)
    elif workers <= 1:
        for job in jobs:
            done(*run_cell(job))
    else:
        _on_processes(jobs, workers, done)


def _on_processes(jobs: list[CellJob], workers: int, done: Done) -> None:
    context = multiprocessing.get_context("spawn")  # no forked torch or Ray state
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        pending = {pool.submit(run_cell, job): job for job in jobs}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = pending.pop(future)
                    error = future.exception()
                    if error is not None:  # the worker process itself died
                        done(job.name, f"worker died: {type(error).__name__}: {error}")
                    else:
                        done(*future.result())
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            raise


def _on_ray(jobs: list[CellJob], address: str | None, done: Done) -> None:
    import ray

    from simulator.engine.resources import check_reachable

    if address:
        check_reachable(address)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, logging_level=logging.ERROR, include_dashboard=False)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_cell)
        pending = {remote.remote(job): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                done(*ray.get(ready[0]))
            except ray.exceptions.RayError as error:
                done(job.name, f"worker died: {type(error).__name__}: {error}")
    finally:
        if started:
            ray.shutdown()
