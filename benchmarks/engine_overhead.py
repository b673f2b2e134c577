"""Device-rounds per second: Flower+Ray with a no-op ClientApp vs this project's engines.

Same fleet size and the same number of device-rounds for all three:

1. ``flower-noop``: Flower's simulation engine on Ray, a ClientApp that replies at
   once to a tiny message (the floor Flower + Ray impose per device-round);
2. ``project-ray``: this project's FedAvg run of a scenario on the ``ray`` engine;
3. ``project-inline``: the same run on the ``inline`` engine.

A device-round here is one message to a device and its reply (training or
evaluation; the one-off registration of every node excluded). Time is
wall-clock inside the ServerApp body, so engine start-up (Ray boot, actor
creation) is excluded and printed apart. Usage:

    python benchmarks/engine_overhead.py [--scenario scenarios/lowbandwidth.yaml]
        [--devices 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from simulator.engine.flower import backend_config
from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import run_plan
from simulator.scenario.loading import load_scenario


def flower_noop(devices: int, device_rounds: int) -> tuple[float, float]:
    """(device-rounds per second, whole-run seconds) for a no-op ClientApp on Ray."""
    client = ClientApp()

    @client.train()
    def _train(message: Message, context: Context) -> Message:
        return Message(RecordDict({"m": ConfigRecord({"ok": 1})}), reply_to=message)

    server = ServerApp()
    result: dict[str, float] = {}
    launched = time.perf_counter()

    @server.main()
    def _main(grid: Grid, context: Context) -> None:
        while len(nodes := sorted(int(n) for n in grid.get_node_ids())) < devices:
            time.sleep(0.1)
        result["startup_s"] = time.perf_counter() - launched
        started = time.perf_counter()
        per_round = max(1, min(devices, device_rounds // 5))
        sent = 0
        while sent < device_rounds:
            batch = nodes[: min(per_round, device_rounds - sent)]
            messages = [
                Message(
                    RecordDict({"c": ConfigRecord({"x": 1})}),
                    dst_node_id=n,
                    message_type=MessageType.TRAIN,
                )
                for n in batch
            ]
            list(grid.send_and_receive(messages))
            sent += len(batch)
        result["rate"] = sent / (time.perf_counter() - started)

    logging.getLogger("flwr").setLevel(logging.ERROR)
    scenario_engine = load_scenario("scenarios/lowbandwidth.yaml").engine
    run_simulation(
        server, client, num_supernodes=devices, backend_config=backend_config(scenario_engine)
    )
    return result["rate"], result["startup_s"]


def project(scenario_path: str, devices: int, rounds: int, engine: str) -> tuple[float, int, float]:
    """(device-rounds per second, device-rounds, run seconds) of a FedAvg run."""
    scenario = load_scenario(
        scenario_path,
        [f"fleet.devices={devices}", f"rounds.count={rounds}", f"engine.kind={engine}"],
    )
    out = Path("/tmp/persona-fleet-bench")
    started = time.perf_counter()
    folder = run_plan(RunPlan(scenario, ["fedavg"], [0], out), show_progress=False)
    total_s = time.perf_counter() - started
    rows = read_rows(metrics_path(folder, "fedavg", 0))
    train = sum(r["sampled"] for r in rows if r["kind"] == "round")
    evals = sum(len(r["devices"]) for r in rows if r["kind"] == "eval")
    end = next(r for r in rows if r["kind"] == "end")
    wall = end["wall_s"] - end["registration_wall_s"]
    return (train + evals) / wall, train + evals, total_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/lowbandwidth.yaml")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    inline_rate, count, inline_total = project(args.scenario, args.devices, args.rounds, "inline")
    ray_rate, _, ray_total = project(args.scenario, args.devices, args.rounds, "ray")
    noop_rate, noop_total = flower_noop(args.devices, count)
    print(
        f"fleet: {args.devices} devices, {count} device-rounds per engine "
        f"(FedAvg training + evaluation, scenario {args.scenario}, {args.rounds} rounds)"
    )
    print(f"{'engine':<16}{'device-rounds/s':>16}{'ms/device-round':>17}{'whole run s':>13}")
    print(f"{'flower-noop':<16}{noop_rate:>16.1f}{1000 / noop_rate:>17.2f}{noop_total:>13.1f}")
    print(f"{'project-ray':<16}{ray_rate:>16.1f}{1000 / ray_rate:>17.2f}{ray_total:>13.1f}")
    inline_ms = 1000 / inline_rate
    print(f"{'project-inline':<16}{inline_rate:>16.1f}{inline_ms:>17.2f}{inline_total:>13.1f}")


if __name__ == "__main__":
    main()
