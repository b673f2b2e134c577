"""Run a scenario: every method for every seed, into one run folder.

The folder (``<out>/<scenario>/<timestamp>/``, layout in ``run_folder``) gets
the resolved scenario and the run plan first, then one append-only metrics
file per method and seed as the run goes, a checkpoint every few rounds, and
the summary at the end (the CLI then builds the report). If the run is
interrupted, the summary is still written from whatever rows are on disk,
and ``resume_run`` continues it: finished method-seed runs are kept,
unfinished ones continue from their checkpoint (or start over if they had
none).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from flwr.app import ArrayRecord
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from basemodel.atomic import write_atomically
from basemodel.progress import showing_progress
from simulator.catalog.errors import UserError
from simulator.engine.deployment import Deployment, DeploymentSpec
from simulator.engine.failures import EngineFailure
from simulator.engine.launch import EngineSession, engine_session
from simulator.engine.rounds import RoundLoop
from simulator.engine.stop import StopRequested, StopSwitch
from simulator.run.accuracy import answered
from simulator.run.checkpoints import Checkpointer, load_checkpoint, run_key
from simulator.run.end_table import end_of_run_table
from simulator.run.folder import (
    checkpoint_path,
    create_run_folder,
    final_state_path,
    metrics_path,
    write_fleet,
)
from simulator.run.lock import writer_lock
from simulator.run.metrics_log import MetricsLog
from simulator.run.paired import paired_table, references, write_paired
from simulator.run.plan import RunPlan, changed_inputs, read_plan, scenario_digest, write_plan
from simulator.run.provenance import record_process
from simulator.run.reader import RunFolderError, load_run, read_rows
from simulator.run.recorded import record_run
from simulator.run.run_log import RunLog, run_log
from simulator.run.stopping import graceful_interrupts
from simulator.run.summary import nonfinite_evaluations, summarize_file, write_summary
from simulator.scenario.loading import load_scenario, scenario_to_document
from simulator.scenario.yaml12 import dump_yaml
from simulator.world.build import WorldSpec, model_words
from simulator.world.cloud import pretrain_for, starting_model_words
from simulator.world.fleet import trace_words
from simulator.world.preflight import preflight
from simulator.world.schedule import onsets
from simulator.world.transport import transport_words
from strategies.base import SettingsError
from strategies.registry import declared_roles


@dataclass
class RunContext:
    """What every method-seed run of one ``simulate`` call shares."""

    folder: Path
    checkpoint_every: int
    checkpoint_budget: float | None
    stop: StopSwitch
    progress: Progress | None
    engine: EngineSession
    keep_final: bool = False


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


class _TrainingBars:
    """Draws the cloud's training loops (``basemodel.progress``) as bars that vanish when done."""

    def __init__(self, progress: Progress):
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def start(self, label: str, total: int) -> Callable[[int], None]:
        task = self._progress.add_task(f"training: {label}", total=total, sim="-", acc="-")
        self._tasks[label] = task
        return lambda steps: self._progress.advance(task, steps)

    def finish(self, label: str) -> None:
        task = self._tasks.pop(label, None)
        if task is not None:
            self._progress.remove_task(task)


def training_progress(progress: Progress | None) -> AbstractContextManager[None]:
    """Within the block, the cloud's training loops draw on the run's progress display."""
    return showing_progress(None if progress is None else _TrainingBars(progress))


def summarize_folder(folder: Path, plan: RunPlan) -> list[dict]:
    """Summary rows for every method-seed file present in ``folder``; with two seeds or
    more, the paired comparisons too (``paired.csv``)."""
    present = [
        (method, seed)
        for seed in plan.seeds
        for method in plan.methods
        if metrics_path(folder, method, seed).exists()
    ]
    rows = [
        summarize_file(metrics_path(folder, method, seed), method, seed, plan.scenario)
        for method, seed in present
    ]
    write_summary(rows, folder)
    if len({seed for _, seed in present}) >= 2:
        evals: dict[str, dict[int, list]] = {}
        for method, seed in present:
            evals.setdefault(method, {})[seed] = answered(
                read_rows(metrics_path(folder, method, seed))
            )
        comparisons = paired_table(
            evals,
            [r for r in references(declared_roles(plan.methods)) if r in evals],
            onsets(plan.scenario),
            plan.scenario.rounds.post_shift_window_s,
        )
        write_paired(comparisons, folder)
    return rows


def _show_method_logs(console: Console) -> None:
    """Methods log what a user should see (e.g. Persona's cache key) to ``persona_fleet``."""
    logger = logging.getLogger("persona_fleet")
    logger.setLevel(logging.INFO)
    for old in [h for h in logger.handlers if isinstance(h, RichHandler)]:
        if old.console is console:
            return
        logger.removeHandler(old)  # an earlier run's console (a sweep's previous cell log)
    logger.addHandler(RichHandler(console=console, show_time=False, show_path=False))


def run_plan(
    plan: RunPlan,
    show_progress: bool = True,
    console: Console | None = None,
    folder: Path | None = None,
    checked: list[str] | None = None,
) -> Path:
    """Run every method for every seed; returns the run folder.

    The folder is a fresh ``<out>/<scenario>/<timestamp>``, or ``folder``
    when a caller names it (a sweep's cell: it must not exist yet). The
    machine and the disk are checked first (``simulator.world.preflight``),
    unless the caller already did and passes its warnings as ``checked``.
    """
    notes = preflight(plan.scenario, plan.scenario.name) if checked is None else checked
    if folder is None:
        folder = create_run_folder(plan.out_dir, plan.scenario.name)
    else:
        folder.mkdir(parents=True)
    with writer_lock(folder):
        document = scenario_to_document(plan.scenario)
        write_atomically(folder / "scenario.yaml", dump_yaml(document, sort_keys=False))
        write_plan(folder, plan)
        record_run(folder, plan.scenario, plan.methods)
        record_process(folder, "start")
        return _execute(plan, folder, False, show_progress, console, notes)


def resume_run(folder: Path, show_progress: bool = True, console: Console | None = None) -> Path:
    """Continue an interrupted run in ``folder``; finished method-seed runs are kept.

    A second writer (another resume, or the original run still going) is refused
    before anything is written, since its rows would interleave with this one's.
    """
    read_plan(folder)  # a folder that is no run is refused before a lock file is left in it
    with writer_lock(folder):
        return _resume_locked(folder, show_progress, console)


def _resume_locked(folder: Path, show_progress: bool, console: Console | None) -> Path:
    stored = read_plan(folder)
    scenario = load_scenario(folder / "scenario.yaml")
    notes = preflight(scenario, str(folder / "scenario.yaml"))
    if stored.scenario_sha256 is not None and stored.scenario_sha256 != scenario_digest(scenario):
        raise UserError(
            f"{folder / 'scenario.yaml'}: changed since this run started (its rows were computed "
            f"under the old one); to run the edited scenario, start afresh: "
            f"simulate {folder / 'scenario.yaml'}"
        )
    changed = changed_inputs(stored, scenario)
    if changed:
        raise UserError(
            f"{folder}: {', '.join(changed)} changed since this run started (its rows were "
            f"computed with the old one); restore it, or start afresh: "
            f"simulate {folder / 'scenario.yaml'}"
        )
    plan = RunPlan(
        scenario,
        list(stored.methods),
        list(stored.seeds),
        folder.parent,
        stored.checkpoint_every,
        stored.checkpoint_budget,
        stored.keep_final,
    )
    record_run(folder, scenario, list(stored.methods))  # a folder from before it was kept
    record_process(folder, "resume")
    return _execute(plan, folder, True, show_progress, console, notes)


def _execute(
    plan: RunPlan,
    folder: Path,
    resuming: bool,
    show_progress: bool,
    console: Console | None,
    notes: list[str],
) -> Path:
    console = console or Console(stderr=True)
    logging.getLogger("flwr").setLevel(logging.ERROR)  # no per-round INFO lines
    _show_method_logs(console)
    scenario = plan.scenario
    scenario_json = json.dumps(scenario_to_document(scenario), sort_keys=True)
    stop = StopSwitch()
    with run_log(folder, console) as log:
        try:
            with (
                progress_bar(show_progress, console) as progress,
                graceful_interrupts(stop),
                engine_session(scenario.engine) as engine,
            ):
                context = RunContext(
                    folder,
                    plan.checkpoint_every,
                    plan.checkpoint_budget,
                    stop,
                    progress,
                    engine,
                    plan.keep_final,
                )
                _run_seeds(plan, context, resuming, scenario_json, log, notes)
        except (StopRequested, KeyboardInterrupt):
            log.write("interrupted; the rows so far are kept (continue with simulate --resume)")
            raise StopRequested(str(folder)) from None
        finally:
            summarize_folder(folder, plan)
            _log_table(folder, log)
    return folder


def _run_seeds(
    plan: RunPlan,
    context: RunContext,
    resuming: bool,
    scenario_json: str,
    log: RunLog,
    notes: list[str],
) -> None:
    """Every method for every seed, in order (each seed's world and starting model first)."""
    scenario, folder = plan.scenario, context.folder
    log.say(f"device model: {model_words(scenario)}")
    wire = transport_words(scenario.fleet.transport.runtime, scenario.fleet.transport.request_s)
    if wire is not None:
        log.say(wire)
    for note in [*scenario.warnings(), *notes]:  # in the run's own log (a sweep cell's too)
        log.say(f"warning: {note}")
    for seed in plan.seeds:
        traced = trace_words(scenario, write_fleet(folder, scenario, seed))
        if traced is not None:
            log.say(traced)
        with training_progress(context.progress):
            pretrained, key = pretrain_for(scenario, seed)
        log.say(f"starting model (seed {seed}, {starting_model_words(scenario)}): cache key {key}")
        world = WorldSpec(scenario_json, seed, str(pretrained), scenario)
        for method in plan.methods:
            spec = DeploymentSpec(world, method)
            if resuming and _finished(folder, method, seed):
                log.say(f"{method} seed {seed}: finished earlier, kept")
                checkpoint_path(folder, method, seed).unlink(missing_ok=True)
                continue
            if context.stop.requested:
                raise StopRequested("stopped between two method runs")
            with training_progress(context.progress):
                _run_one(spec, context, resuming)
            _log_offline(folder, method, seed)


def _log_table(folder: Path, log: RunLog) -> None:
    """The end-of-run table, in ``run.log`` (the command line prints it too)."""
    try:
        table = end_of_run_table(load_run(folder))
    except RunFolderError as error:  # nothing finished yet: the log says why there is no table
        log.write(f"no results table: {error}")
        return
    for line in table.splitlines():
        log.write(line)


def _log_offline(folder: Path, method: str, seed: int) -> None:
    """On a traced fleet: how often a sampled device dropped out as its window closed."""
    rounds = [r for r in read_rows(metrics_path(folder, method, seed)) if r["kind"] == "round"]
    if any("went_offline" in r for r in rounds):
        dropped = sum(r.get("went_offline", 0) for r in rounds)
        sent = sum(r["sampled"] for r in rounds)
        logging.getLogger("persona_fleet").info(
            "%s seed %d: %d of %d sampled device-rounds dropped as a traced window closed",
            method,
            seed,
            dropped,
            sent,
        )


def _finished(folder: Path, method: str, seed: int) -> bool:
    path = metrics_path(folder, method, seed)
    return path.exists() and any(row.get("kind") == "end" for row in read_rows(path))


def _checkpointer(spec: DeploymentSpec, context: RunContext, resuming: bool) -> Checkpointer:
    """This run's checkpoint policy; on resume, with the checkpoint to continue from."""
    log = logging.getLogger("persona_fleet")
    seed = spec.world.seed
    path = checkpoint_path(context.folder, spec.method, seed)
    key = run_key(spec.world.scenario_json, spec.method, seed)
    resume_from = load_checkpoint(path, key) if resuming and path.exists() else None
    rows = metrics_path(context.folder, spec.method, seed)
    written = rows.stat().st_size if rows.exists() else 0
    if resume_from is not None and written < resume_from.log_offset:
        log.warning(
            "%s seed %d: %s holds %d bytes, fewer than the %d its checkpoint recorded "
            "(lost in a crash); starting this method and seed over",
            spec.method,
            seed,
            rows,
            written,
            resume_from.log_offset,
        )
        resume_from = None
    if resume_from is not None:
        log.info(
            "%s seed %d: resuming after round %d",
            spec.method,
            seed,
            resume_from.position.rounds_run,
        )
    elif resuming:
        log.info("%s seed %d: no checkpoint, starting over", spec.method, seed)
    final = final_state_path(context.folder, spec.method, seed) if context.keep_final else None
    return Checkpointer(
        path,
        context.checkpoint_every,
        key,
        context.checkpoint_budget,
        resume_from,
        final_path=final,
    )


ENGINE_RESTARTS = 2


def _run_one(spec: DeploymentSpec, context: RunContext, resuming: bool) -> None:
    """One method-seed run; if the engine breaks, again on a fresh one from the last checkpoint.

    Resuming gives exactly the numbers of an unbroken run, so a lost Ray
    worker costs time, not results. After ``ENGINE_RESTARTS`` restarts the
    run stops with a clear error; ``simulate --resume`` continues it later.
    """
    log = logging.getLogger("persona_fleet")
    for attempt in range(ENGINE_RESTARTS + 1):
        try:
            _attempt(spec, context, resuming or attempt > 0)
            return
        except SettingsError as error:
            raise UserError(
                f"{spec.method} seed {spec.world.seed}: {error}; the method-seeds finished "
                f"before it are kept in {context.folder}"
            ) from None
        except EngineFailure as failure:
            if context.stop.requested:  # Ctrl-C may also reach Ray's workers
                raise StopRequested(str(failure)) from None
            folder = context.folder
            if attempt == ENGINE_RESTARTS:
                raise UserError(
                    f"{spec.method} seed {spec.world.seed}: {failure} (engine failed "
                    f"{attempt + 1} times); results so far are in {folder}; "
                    f"continue with: simulate --resume {folder}"
                ) from None
            log.warning(
                "%s seed %d: %s; restarting the engine from the last checkpoint",
                spec.method,
                spec.world.seed,
                failure,
            )
            context.engine.reset()


def _attempt(spec: DeploymentSpec, context: RunContext, resuming: bool) -> None:
    folder, progress = context.folder, context.progress
    seed = spec.world.seed
    checkpointer = _checkpointer(spec, context, resuming)
    resume_from = checkpointer.resume_from
    keep_bytes = resume_from.log_offset if resume_from else (0 if resuming else None)
    deployment = Deployment.get(spec)
    world = deployment.world
    rounds = world.scenario.rounds
    task = None
    if progress is not None:
        task = progress.add_task(
            f"{spec.method} seed {seed}", total=rounds.count, sim="0s", acc="-"
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
    with MetricsLog(metrics_path(folder, spec.method, seed), keep_bytes) as rows:
        loop = RoundLoop(deployment, initial, rows, on_progress, checkpointer, context.stop)
        context.engine.run(spec, len(world.fleet), loop.run)
    checkpointer.path.unlink(missing_ok=True)  # finished: the rows hold everything
    log = logging.getLogger("persona_fleet")
    log.info("%s seed %d: %s", spec.method, seed, context.engine.describe())
    diverged = nonfinite_evaluations(read_rows(metrics_path(folder, spec.method, seed)))
    if diverged:
        log.warning(
            "%s seed %d: %d device evaluations served a model with NaN or infinite outputs "
            "(training diverged; those scores mean little: try a smaller learning rate)",
            spec.method,
            seed,
            diverged,
        )
    if progress is not None and task is not None:
        progress.update(
            task,
            completed=rounds.count,
            description=f"{spec.method} seed {seed} ({time.perf_counter() - started:.0f}s)",
        )
