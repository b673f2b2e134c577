"""Cells per hour of ``simulate sweep`` on 1, 2 and all cores.

Runs the same small grid (``--grid`` axes on ``--scenario``; by default a
2 x 2 grid of the tiny scenario at 120 devices, 2 seeds, static and fedavg,
one shared pretrained model) with 1 worker, 2 workers and one worker per core, and
prints the wall time and cells per hour of each. The first pass also fills
the pretraining cache, so it is run once untimed first. Usage:

    python benchmarks/sweep_throughput.py
    python benchmarks/sweep_throughput.py --cells-on ray
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from simulator.sweep.driver import SweepRequest, start_sweep
from simulator.sweep.grid import parse_axes

HERE = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(HERE / "scenarios" / "tiny.yaml"))
    parser.add_argument(
        "--grid",
        action="append",
        default=None,
        help="axes (default: data.labeled_fraction=0.1,0.5 and rounds.participation=0.25,0.5)",
    )
    parser.add_argument("--methods", default="static,fedavg")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument(
        "--set", dest="overrides", action="append", default=None, help="default: fleet.devices=120"
    )
    parser.add_argument("--cells-on", choices=("processes", "ray"), default="processes")
    args = parser.parse_args()
    grid = args.grid or ["data.labeled_fraction=0.1,0.5", "rounds.participation=0.25,0.5"]
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as out:

        def sweep(workers: int) -> tuple[float, int]:
            request = SweepRequest(
                args.scenario,
                ["pretrain.seed=0", *(args.overrides or ["fleet.devices=120"])],
                parse_axes(grid),
                args.seeds,
                args.methods.split(","),
                workers,
                Path(out) / f"w{workers}-{time.monotonic_ns()}",
            )
            started = time.perf_counter()
            folder = start_sweep(request, args.cells_on, None)
            cells = len(list((folder / "cells").glob("cell-*.log")))
            return time.perf_counter() - started, cells

        sweep(1)  # warm the pretraining cache
        print(f"{args.scenario}: {' x '.join(grid)}; methods {args.methods}; {cores} cores")
        for workers in sorted({1, 2, cores}):
            wall, cells = sweep(workers)
            print(
                f"  {workers} worker(s): {cells} cells in {wall:.1f} s = "
                f"{3600 * cells / wall:.0f} cells per hour",
                flush=True,
            )


if __name__ == "__main__":
    main()
