"""``simulate``: the command line.

    simulate SCENARIO.yaml [--methods a,b] [--engine inline|ray] [--seeds N]
                           [--set KEY.PATH=VALUE ...] [--out DIR] [--no-progress]
                           [--checkpoint-every N] [--checkpoint-budget FRACTION]
    simulate --resume RUN_DIR [--no-progress]
    simulate validate SCENARIO.yaml [--set ...]
    simulate report RUN_DIR | SWEEP_DIR
    simulate compare RUN_DIR [RUN_DIR ...] [--out DIR]
    simulate sweep SCENARIO.yaml --grid KEY.PATH=V1,V2 [...]   (see simulator/sweep/command.py)
    simulate supernode SCENARIO.yaml --device N --superlink HOST:PORT [--set ...]

Errors are one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from simulator.catalog.errors import UserError, closest
from simulator.engine.stop import StopRequested
from simulator.run.defaults import DEFAULT_CHECKPOINT_BUDGET, DEFAULT_CHECKPOINT_EVERY
from simulator.run.stopping import EXIT_INTERRUPTED
from simulator.scenario.overrides import add_set_option

if TYPE_CHECKING:  # the heavy modules load only when a command needs them (--help is fast)
    from simulator.scenario.schema import Engine, Scenario

EXIT_USAGE = 2


def _common(parser: argparse.ArgumentParser, optional_scenario: bool = False) -> None:
    parser.add_argument(
        "scenario", nargs="?" if optional_scenario else None, help="scenario file (YAML)"
    )
    add_set_option(parser, "override a scenario value (repeatable), e.g. --set fleet.devices=200")


COMMANDS = {
    "validate": "check a scenario file; run nothing",
    "report": "rebuild a run folder's (or sweep folder's) report",
    "compare": "set two or more run folders side by side",
    "sweep": "run a grid of scenario values (simulate sweep --help)",
    "traces": "convert device traces, or write the example (simulate traces --help)",
    "supernode": "serve one device of a scenario on a real SuperNode (--help)",
}


def build_parser() -> argparse.ArgumentParser:
    commands = "\n".join(f"  simulate {name:<9} {what}" for name, what in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="simulate",
        description="Simulate a device fleet adapting to data shift, for every method "
        "of a scenario, and write a results folder.",
        epilog=f"other commands:\n{commands}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser, optional_scenario=True)
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its checkpoints (takes no other options "
        "but --no-progress: the folder holds the scenario and plan)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help=f"rounds between checkpoints (default {DEFAULT_CHECKPOINT_EVERY}; 0: none)",
    )
    parser.add_argument(
        "--checkpoint-budget",
        type=float,
        metavar="FRACTION",
        help="skip a due checkpoint if checkpoints would take more than this share of the "
        f"run's wall time (default {DEFAULT_CHECKPOINT_BUDGET}; 1: never skip)",
    )
    parser.add_argument(
        "--keep-final",
        action="store_true",
        help="keep each method-seed's end state in final/ (the cloud's model and every "
        "device's weights and records, a checkpoint's format)",
    )
    parser.add_argument("--methods", help="comma-separated methods (default: the scenario's)")
    parser.add_argument(
        "--engine", choices=["inline", "ray", "flower", "deployment"], help="override the engine"
    )
    parser.add_argument("--seeds", type=int, help="number of seeds (default: the scenario's)")
    parser.add_argument("--out", help="put the run folder under DIR instead of the scenario's")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def build_validate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simulate validate", description="Check a scenario file; run nothing."
    )
    _common(parser)
    return parser


def _report(argv: list[str]) -> int:
    from reports.build import build_report

    parser = argparse.ArgumentParser(
        prog="simulate report",
        description="(Re)build plots and report from a run folder or a sweep folder.",
    )
    parser.add_argument("run_dir", help="a run folder written by simulate (or a sweep folder)")
    args = parser.parse_args(argv)
    if (Path(args.run_dir) / "sweep.json").is_file():
        from reports.sweep import write_sweep_report

        print(f"sweep report: {write_sweep_report(Path(args.run_dir))}")
        return 0
    print(f"report: {build_report(args.run_dir)}")
    return 0


def _compare(argv: list[str]) -> int:
    from datetime import datetime

    from reports.build import compare_runs
    from simulator.run.provenance import provenance_differences

    parser = argparse.ArgumentParser(
        prog="simulate compare", description="Put several run folders side by side."
    )
    parser.add_argument("run_dirs", nargs="+", help="run folders written by simulate")
    parser.add_argument("--out", help="output folder (default: runs/compare-<timestamp>)")
    args = parser.parse_args(argv)
    if len(args.run_dirs) < 2:
        parser.error("give two run folders or more (one run's own page: simulate report FOLDER)")
    out = Path(args.out or f"runs/compare-{datetime.now():%Y-%m-%dT%H-%M-%S}")
    page = compare_runs(args.run_dirs, out)
    for line in provenance_differences([Path(f) for f in args.run_dirs]):
        print(f"warning: {line} (figures may differ for that reason alone)", file=sys.stderr)
    print(f"comparison: {page}")
    return 0


def with_methods(
    scenario: Scenario, wanted: list[str], source: str, params_from: str | None = None
) -> Scenario:
    """The scenario with any registered method it does not list added.

    Added methods take default parameters, or those of the listed method
    ``params_from`` (so an ablation differs from its parent only in what it
    removes); the params schema of the added method still validates them.
    """
    from strategies.registry import get_method, method_names

    unknown = [m for m in wanted if m not in method_names()]
    if unknown:
        raise UserError(
            f"--methods: unknown method {', '.join(repr(m) for m in unknown)}"
            f"{closest(unknown[0], method_names())}; valid methods: {', '.join(method_names())}"
        )
    listed = {m.name: m for m in scenario.methods}
    if params_from is not None and params_from not in listed:
        raise UserError(f"params from {params_from!r}: the scenario does not list that method")
    inherited = dict(listed[params_from].params) if params_from is not None else {}
    extra = []
    for m in wanted:
        if m not in listed:  # an ablation keeps what it fixes itself
            fixed = get_method(m).fixed_params
            params = {k: v for k, v in inherited.items() if k not in fixed}
            extra.append({"name": m, "params": params} if params else {"name": m})
    if not extra:
        return scenario
    from simulator.scenario.loading import parse_scenario, scenario_to_document

    document = scenario_to_document(scenario)
    document["methods"] = document["methods"] + extra
    return parse_scenario(document, source)


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = list(args.overrides)
    if getattr(args, "engine", None):
        extra.append(f"engine.kind={args.engine}")
    return extra


def _traces(argv: list[str]) -> int:
    from simulator.world.trace_files import TraceError
    from simulator.world.traces import convert_trace

    parser = argparse.ArgumentParser(
        prog="simulate traces",
        description="Device traces in FedScale's layout (fleet.traces in a scenario).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert",
        help="check a trace (pickle, JSON or CSV) and write it as CSV or JSON",
        description="Check every client of a capacity or behaviour trace and write it in "
        "the CSV or JSON layout (by OUT's suffix); nothing is written if a client is bad.",
    )
    convert.add_argument("source", metavar="IN")
    convert.add_argument("target", metavar="OUT")
    example = commands.add_parser(
        "example",
        help="write the synthetic example traces (capacity.csv, behaviour.csv) into DIR",
    )
    example.add_argument("folder", metavar="DIR")
    args = parser.parse_args(argv)
    if args.command == "example":
        from simulator.world.example_traces import write_example_traces

        for path in write_example_traces(Path(args.folder)):
            print(path)
        return 0
    try:
        kind, count = convert_trace(args.source, args.target)
    except TraceError as error:
        raise UserError(str(error)) from None
    print(f"{args.target}: {count:,} clients of a {kind} trace")
    return 0


def _validate(argv: list[str]) -> int:
    from simulator.scenario.loading import load_scenario

    args = build_validate_parser().parse_args(argv)
    from simulator.world.preflight import preflight

    scenario = load_scenario(args.scenario, args.overrides)
    _warn(scenario, preflight(scenario, args.scenario))
    print(
        f"{args.scenario}: valid ({scenario.fleet.devices} devices, "
        f"{len(scenario.methods)} methods, {scenario.rounds.count} rounds)"
    )
    return 0


def _warn(scenario: Scenario, checked: list[str]) -> None:
    """The scenario's warnings, one line each on stderr (they do not stop the run)."""
    for note in [*scenario.warnings(), *checked]:
        print(f"warning: {note}", file=sys.stderr)


def _run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # before the heavy imports: --help answers at once
    from simulator.run.plan import RunPlan
    from simulator.run.runner import run_plan
    from simulator.scenario.loading import load_scenario
    from simulator.world.preflight import preflight

    if args.resume is not None:
        return _resume(args, parser)
    if args.scenario is None:
        parser.error("the following arguments are required: scenario (or --resume RUN_DIR)")
    if args.seeds is not None and args.seeds < 1:
        raise UserError("--seeds must be at least 1")
    every = DEFAULT_CHECKPOINT_EVERY if args.checkpoint_every is None else args.checkpoint_every
    budget = DEFAULT_CHECKPOINT_BUDGET if args.checkpoint_budget is None else args.checkpoint_budget
    if every < 0:
        raise UserError("--checkpoint-every must be 0 (none) or a positive number of rounds")
    if not 0 < budget <= 1:
        raise UserError("--checkpoint-budget must be a fraction in (0, 1]")
    scenario = load_scenario(args.scenario, _overrides(args))
    methods = [m.name for m in scenario.methods]
    if args.methods is not None:
        wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
        repeated = sorted({m for m in wanted if wanted.count(m) > 1})
        if repeated:
            raise UserError(
                f"--methods: each method may appear once; repeated: {', '.join(repeated)}"
            )
        if not wanted:
            raise UserError("--methods: name at least one method")
        scenario = with_methods(scenario, wanted, args.scenario)
        methods = wanted
    seeds_count = args.seeds or scenario.seeds
    plan = RunPlan(
        scenario=scenario,
        methods=methods,
        seeds=[scenario.seed + i for i in range(seeds_count)],
        out_dir=Path(args.out or scenario.output),
        checkpoint_every=every,
        checkpoint_budget=None if budget >= 1 else budget,
        keep_final=args.keep_final,
    )
    checked = preflight(scenario, args.scenario)  # this machine and the files, once
    if scenario.engine.kind == "deployment":  # the SuperLink's ServerApp runs the plan
        from rich.console import Console

        from simulator.run.submit import submit_plan

        return _print_results(submit_plan(plan, Console(stderr=True)))
    return _print_results(run_plan(plan, show_progress=not args.no_progress, checked=checked))


def _resume(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from simulator.catalog.errors import resume_refusal
    from simulator.run.runner import resume_run

    refusal = resume_refusal(
        [
            ("scenario file", args.scenario),
            ("--set", args.overrides),
            ("--methods", args.methods),
            ("--engine", args.engine),
            ("--seeds", args.seeds),
            ("--out", args.out),
            ("--checkpoint-every", args.checkpoint_every is not None),
            ("--checkpoint-budget", args.checkpoint_budget is not None),
            ("--keep-final", args.keep_final),
        ],
        "run",
    )
    if refusal is not None:
        parser.error(refusal)
    folder = Path(args.resume)
    engine = _deployed_engine(folder)
    if engine is not None:  # a deployment resumes on its SuperLink
        from rich.console import Console

        from simulator.run.submit import resume_on_superlink

        return _print_results(resume_on_superlink(folder, engine, Console(stderr=True)))
    return _print_results(resume_run(folder, show_progress=not args.no_progress))


def _deployed_engine(folder: Path) -> Engine | None:
    """The engine section of a deployment run folder (None for any other folder)."""
    from simulator.scenario.documents import read_document
    from simulator.scenario.schema import Engine

    try:
        engine = read_document(folder / "scenario.yaml").get("engine", {})
        if not isinstance(engine, dict) or engine.get("kind") != "deployment":
            return None
        return Engine.model_validate(engine)
    except (UserError, ValueError):
        return None  # the resume itself says what is wrong with the folder


def _build_report(folder: Path) -> None:
    """Plots and report at the end of a run; a report failure never loses results."""
    from reports.build import build_report

    try:
        build_report(folder)
    except Exception as error:  # the results are on disk; the report can be rebuilt
        print(
            f"warning: report not built ({type(error).__name__}: {error}); "
            f"rebuild it with: simulate report {folder}",
            file=sys.stderr,
        )


def _print_results(folder: Path) -> int:
    """The short table (accuracy in points, KB and joules per device), then where the rest is."""
    from simulator.run.end_table import end_of_run_table
    from simulator.run.reader import load_run

    _build_report(folder)
    print(end_of_run_table(load_run(folder)))
    print(f"results: {folder} (every figure: summary.csv)")
    if (folder / "report.html").is_file():
        print(f"report: {folder / 'report.html'}")
    return 0


def _sweep(argv: list[str]) -> int:
    """A sweep, then its report (a report failure never loses the sweep's table)."""
    from reports.sweep import write_sweep_report
    from simulator.sweep.command import sweep_main

    folder = sweep_main(argv)
    if folder is None:  # a dry run
        return 0
    print(f"sweep: {folder}")
    if (folder / "sweep.csv").exists():
        try:
            write_sweep_report(folder)
        except Exception as error:  # the table is on disk
            print(
                f"warning: sweep report not built ({type(error).__name__}: {error})",
                file=sys.stderr,
            )
        for name in ("sweep.csv", "sweep.md", "sweep.html"):
            if (folder / name).exists():
                print(f"  {folder / name}")
    failed = sorted(path.stem for path in (folder / "cells").glob("*.error"))
    if failed:  # the table holds the others; a scheduler must still see the failure
        print(
            f"error: {len(failed)} cell(s) failed ({', '.join(failed)}); their errors are in "
            f"{folder / 'cells'}/<cell>.error, and simulate sweep --resume {folder} reruns them",
            file=sys.stderr,
        )
        return 1
    return 0


def _refuse_misspelt_command(argv: list[str]) -> None:
    """``simulate valdate x.yaml`` is a typo of a command, not a scenario named valdate."""
    import difflib

    word = argv[0] if argv else ""
    if not word or word.startswith("-") or Path(word).suffix or Path(word).exists():
        return
    close = difflib.get_close_matches(word, list(COMMANDS), n=1, cutoff=0.6)
    hint = f"did you mean 'simulate {close[0]}'? " if close else ""
    raise UserError(
        f"{word!r} is neither a command nor a scenario file; {hint}"
        f"commands: {', '.join(COMMANDS)}; or give a scenario file (.yaml)"
    )


def quiet_libraries() -> None:
    """Keep Flower's per-round INFO lines out of the way of the progress bar."""
    import logging

    logging.getLogger("flwr").setLevel(logging.WARNING)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # no GPU hints printed


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``simulate`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_libraries()
    try:
        if argv and argv[0] == "validate":
            return _validate(argv[1:])
        if argv and argv[0] == "report":
            return _report(argv[1:])
        if argv and argv[0] == "compare":
            return _compare(argv[1:])
        if argv and argv[0] == "sweep":
            return _sweep(argv[1:])
        if argv and argv[0] == "traces":
            return _traces(argv[1:])
        if argv and argv[0] == "supernode":
            from simulator.engine.supernode_start import supernode_main

            return supernode_main(argv[1:])
        _refuse_misspelt_command(argv)
        return _run(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except StopRequested as stopped:
        folder = str(stopped)
        print(
            f"interrupted: results so far are in {folder}; "
            f"continue with: simulate --resume {folder}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:
        where = f" {error.filename}:" if error.filename else ""
        print(f"error:{where} {error.strerror or error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
