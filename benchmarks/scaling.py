"""Memory at scale: per-device state and peak RSS for 1,000 / 10,000 / 100,000 devices.

For every fleet size and every method, a fresh process runs the scenario
(default: bigfleet) at 1% participation for 5 rounds on the inline engine,
then reports:

- ``holding``: devices that hold any state after the run (a device that never
  took part holds nothing);
- ``state B/holder``: bytes of state per holding device, counting each tensor
  once however many devices share it (FedAvg's devices share the global model
  they downloaded) plus their method records;
- ``peak RSS MB``: the process's peak resident memory (world, cloud, devices);
- ``wall s``: the cloud loop's wall time.

Usage:

    python benchmarks/scaling.py [--scenario scenarios/bigfleet.yaml]
        [--sizes 1000,10000,100000] [--methods all|a,b] [--rounds 5]
        [--participation 0.01]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flwr.app import ArrayRecord

from simulator.cli import with_methods
from simulator.engine.deployment import Deployment, DeploymentSpec
from simulator.engine.inline import InlineGrid, use_cloud_identity
from simulator.engine.rounds import RoundLoop
from simulator.engine.runtime import DeviceRuntime
from simulator.engine.state import MemoryStore
from simulator.run.metrics_log import MetricsLog
from simulator.scenario.loading import load_scenario, scenario_to_document
from simulator.world.build import WorldSpec
from simulator.world.cloud import pretrain_for
from strategies.registry import method_names


def state_bytes(store: MemoryStore) -> tuple[int, int]:
    """(devices holding state, bytes they hold with shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for state in store.states.values():
        for tensor in (state.held or {}).values():
            pointer = tensor.untyped_storage().data_ptr()
            if pointer not in seen:
                seen.add(pointer)
                total += tensor.untyped_storage().nbytes()
        for record in state.records.values():
            if isinstance(record, ArrayRecord):
                total += sum(len(record[name].data) for name in record)
            else:
                total += len(json.dumps(dict(record), default=str))
    return len(store.states), total


def run_one(scenario_path: str, devices: int, method: str, rounds: int, share: float) -> dict:
    """One method on one fleet size, in this process; what it held and what it cost."""
    overrides = [
        f"fleet.devices={devices}",
        f"rounds.count={rounds}",
        f"rounds.participation={share}",
        "engine.kind=inline",
    ]
    scenario = with_methods(load_scenario(scenario_path, overrides), [method], scenario_path)
    pretrained, _ = pretrain_for(scenario, scenario.seed)
    world = WorldSpec(
        json.dumps(scenario_to_document(scenario), sort_keys=True), scenario.seed, str(pretrained)
    )
    deployment = Deployment.get(DeploymentSpec(world, method))
    store = MemoryStore()
    use_cloud_identity()
    grid = InlineGrid(DeviceRuntime(deployment, store), devices)
    with tempfile.TemporaryDirectory() as out, MetricsLog(Path(out) / "rows.jsonl") as rows:
        initial = ArrayRecord(deployment.world.pretrained)
        started = time.perf_counter()
        RoundLoop(deployment, initial, rows).run(grid)
        wall_s = time.perf_counter() - started
    holding, held = state_bytes(store)
    return {
        "devices": devices,
        "method": method,
        "holding": holding,
        "state_bytes_per_holder": held / holding if holding else 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_s": wall_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/bigfleet.yaml")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--methods", default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--participation", type=float, default=0.01)
    parser.add_argument("--one", nargs=2, metavar=("DEVICES", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        devices, method = int(args.one[0]), args.one[1]
        print(json.dumps(run_one(args.scenario, devices, method, args.rounds, args.participation)))
        return
    methods = method_names() if args.methods == "all" else args.methods.split(",")
    print(
        f"{args.scenario}: {args.participation:.0%} participation, {args.rounds} rounds, "
        "inline engine, one process per row"
    )
    print(
        f"{'devices':>8} {'method':<18}{'holding':>9}{'state B/holder':>16}"
        f"{'peak RSS MB':>13}{'wall s':>9}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        for method in methods:
            command = [sys.executable, __file__, "--scenario", args.scenario]
            command += ["--rounds", str(args.rounds), "--participation", str(args.participation)]
            command += ["--one", str(size), method]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{size:>8} {method:<18}failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"{size:>8} {method:<18}{row['holding']:>9}"
                f"{row['state_bytes_per_holder']:>16,.0f}{row['peak_rss_mb']:>13,.0f}"
                f"{row['wall_s']:>9.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
