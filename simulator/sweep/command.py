"""``simulate sweep``: the command line of a sweep.

simulate sweep SCENARIO.yaml --grid KEY.PATH=V1,V2,... [--grid ...] [--seeds N]
               [--methods a,b] [--set KEY.PATH=VALUE ...] [--workers N]
               [--cells-on processes|ray] [--out DIR] [--dry-run]
simulate sweep --resume SWEEP_DIR [--workers N] [--cells-on processes|ray]

Each cell is one ordinary run on the inline engine; ``--cells-on`` says where
the cells run (worker processes here, or Ray tasks). ``--engine`` keeps the
one meaning it has for ``simulate``, which a sweep has no use for, so it is
refused with that said.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from simulator.catalog.errors import UserError, resume_refusal
from simulator.scenario.loading import load_scenario
from simulator.scenario.overrides import add_set_option, parse_key_path
from simulator.sweep.driver import (
    SweepRequest,
    default_workers,
    describe,
    plan_sweep,
    resume_sweep,
    start_sweep,
)
from simulator.sweep.grid import parse_axes
from simulator.sweep.state import read_sweep_file


def build_sweep_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simulate sweep",
        description="Run a scenario over a grid of settings (every cell x method x seed) and "
        "map where each method wins, with paired 95% intervals.",
    )
    parser.add_argument("scenario", nargs="?", help="scenario file (YAML)")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY.PATH=V1,V2,...",
        help="an axis: any scalar key of the scenario and its values (repeatable)",
    )
    parser.add_argument("--seeds", type=int, help="seeds per cell (default: the scenario's)")
    parser.add_argument("--methods", help="comma-separated methods (default: the scenario's)")
    add_set_option(parser, "override a value of every cell (repeatable)")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="cells run side by side (default: this machine's cores)",
    )
    parser.add_argument(
        "--cells-on",
        choices=("processes", "ray"),
        default="processes",
        help="processes: worker processes on this machine; ray: Ray tasks (a cluster with "
        "engine.ray_address); each cell runs on the inline engine either way",
    )
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="sweeps", help="parent folder (default: sweeps)")
    parser.add_argument("--dry-run", action="store_true", help="list the cells and an estimate")
    parser.add_argument("--resume", metavar="SWEEP_DIR", help="continue an interrupted sweep")
    return parser


def sweep_main(argv: list[str]) -> Path | None:
    """Run (or resume) a sweep; its folder, or ``None`` after a dry run."""
    parser = build_sweep_parser()
    args = parser.parse_args(argv)
    if args.engine is not None:
        parser.error(
            "--engine picks the engine of one run; a sweep's cells run on the inline engine. "
            f"To run the cells as Ray tasks: --cells-on {args.engine}"
            if args.engine == "ray"
            else "--engine picks the engine of one run; a sweep's cells run on the inline "
            "engine (where they run: --cells-on processes|ray)"
        )
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.resume is not None:
        refusal = resume_refusal(
            [
                ("scenario file", args.scenario),
                ("--grid", args.grid),
                ("--seeds", args.seeds),
                ("--methods", args.methods),
                ("--set", args.overrides),
                ("--dry-run", args.dry_run),
            ],
            "sweep",
        )
        if refusal is not None:
            parser.error(refusal)
        folder = Path(args.resume)
        address = read_sweep_file(folder).base.get("engine", {}).get("ray_address")
        return resume_sweep(folder, args.workers, args.cells_on, address)
    if args.scenario is None:
        parser.error("the following arguments are required: scenario (or --resume SWEEP_DIR)")
    if args.seeds is not None and args.seeds < 1:
        raise UserError("--seeds must be at least 1")
    methods = None
    if args.methods is not None:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        if not methods or len(set(methods)) != len(methods):
            raise UserError("--methods: name each method once, at least one")
    axes = parse_axes(args.grid)
    swept = {tuple(parse_key_path(axis.key)) for axis in axes}
    for given in args.overrides:
        key = given.partition("=")[0].strip()
        try:
            path = tuple(parse_key_path(key))
        except ValueError:
            continue  # a malformed key is named when the overrides are applied
        if path in swept:  # the grid would overwrite it in every cell
            raise UserError(f"--set {key}: also a --grid axis; give it once (as the axis)")
    seeds = args.seeds or load_scenario(args.scenario, args.overrides).seeds
    request = SweepRequest(
        args.scenario, list(args.overrides), axes, seeds, methods, args.workers, Path(args.out)
    )
    sweep, scenarios = plan_sweep(request)
    if args.dry_run:
        print("\n".join(describe(sweep, scenarios, args.workers)))
        return None
    address = scenarios[0].engine.ray_address
    return start_sweep(request, args.cells_on, address)
