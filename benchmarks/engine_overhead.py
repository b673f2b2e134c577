"""What a device-round costs on each engine, against the same tensor work done bare.

One FedAvg run of a scenario (default: bigfleet, 10,000 devices, 10% taking
part) on every engine asked for, timed inside the cloud loop (engine start-up
and device registration excluded), divided by the device-rounds it ran
(training messages plus evaluations). In the same process it then times:

- ``bare loop``: the tensor work alone, one device at a time: for every
  training device-round, load the global weights into a model and run the
  same local SGD on a labeled window of the same size; for every evaluation,
  one forward pass over an evaluation batch. No data generation, no
  messages, no metering: a floor the engines cannot go below without
  batching.
- ``batch ceiling``: the same samples as large minibatches (1,024) through
  one shared model: the most any batching of devices could reach with this
  model on this CPU, since devices that each train their own weights can
  at best run as one kernel over all their samples. If it is close to the
  bare loop, batching the cohort cannot make training much faster.
- ``flower-noop``: Flower's simulation engine on Ray with a ClientApp that
  answers a tiny message at once, as many device-rounds as the runs had
  (the floor Flower + Ray impose per device-round).

- ``--cohorts 100,1000,10000`` instead: the batched cohort path
  (``strategies.cohort``, what ``engine.device: cuda`` runs) for one round of
  that many devices, FedAvg's local training and one evaluation batch each,
  on ``--cohort-device`` (``cpu`` or ``cuda``), in device-rounds per second,
  beside the bare loop's rate on the CPU.

Usage:

    python benchmarks/engine_overhead.py [--scenario scenarios/bigfleet.yaml]
        [--devices 10000] [--participation 0.1] [--rounds 3]
        [--engines inline,ray] [--no-flower-noop]
    python benchmarks/engine_overhead.py --cohorts 100,1000,10000 [--cohort-device cuda]
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from basemodel.threads import fixed_threads
from simulator.catalog.datasets import dataset_spec
from simulator.cli import with_methods
from simulator.engine.flower import backend_config
from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import run_plan
from simulator.scenario.loading import load_scenario
from simulator.scenario.schema import Scenario
from simulator.world.build import new_model
from simulator.world.cloud import pretrain_for
from strategies.cohort import train_cohort
from strategies.cohort_serving import predict_cohort
from strategies.local_training import LocalTrainingParams, train_locally


def engine_run(scenario: Scenario, out: Path) -> tuple[float, int, int]:
    """(loop seconds, training device-rounds, evaluation device-rounds) of one FedAvg run."""
    folder = run_plan(RunPlan(scenario, ["fedavg"], [0], out, 0, None), show_progress=False)
    rows = read_rows(metrics_path(folder, "fedavg", 0))
    train = sum(r["sampled"] for r in rows if r["kind"] == "round")
    evals = sum(len(r["devices"]) for r in rows if r["kind"] == "eval")
    end = next(r for r in rows if r["kind"] == "end")
    return end["wall_s"] - end["registration_wall_s"], train, evals


def fedavg_work(scenario: Scenario) -> tuple[LocalTrainingParams, int, tuple[int, ...], int]:
    """(FedAvg's training settings, labeled samples per window, input shape, classes)."""
    fedavg = next(m for m in scenario.methods if m.name == "fedavg")
    params = LocalTrainingParams.model_validate(
        {k: v for k, v in fedavg.params.items() if k in LocalTrainingParams.model_fields}
    )
    labeled = int(scenario.data.labeled_fraction * scenario.data.window)
    data = dataset_spec(scenario.data.dataset)
    return params, labeled, tuple(data.input_shape), data.num_classes


def bare_loop(scenario: Scenario, train: int, evals: int) -> float:
    """Seconds of the same tensor work, one device at a time, with nothing around it."""
    pretrained, _ = pretrain_for(scenario, 0)
    weights = torch.load(pretrained, weights_only=True)
    model = new_model(scenario)
    params, labeled, shape, classes = fedavg_work(scenario)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(labeled, *shape, generator=generator)
    labels = torch.randint(0, classes, (labeled,), generator=generator)
    batch = torch.rand(scenario.data.eval_samples, *shape, generator=generator)
    with fixed_threads(1):
        started = time.perf_counter()
        for device in range(train):
            model.load_state_dict(weights)
            train_locally(model, inputs, labels, params, device)
        with torch.inference_mode():
            for _ in range(evals):
                model.load_state_dict(weights)
                model(batch)
        return time.perf_counter() - started


def batch_ceiling(scenario: Scenario, train: int, evals: int, batch: int = 1024) -> float:
    """Seconds for the bare loop's samples as ``batch``-sized steps of one shared model."""
    model = new_model(scenario)
    params, labeled, shape, classes = fedavg_work(scenario)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(batch, *shape, generator=generator)
    labels = torch.randint(0, classes, (batch,), generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss_fn = torch.nn.CrossEntropyLoss()
    samples = train * labeled * params.local_epochs
    with fixed_threads(1):
        started = time.perf_counter()
        for _ in range(math.ceil(samples / batch)):
            optimizer.zero_grad()
            loss_fn(model(inputs), labels).backward()
            optimizer.step()
        with torch.inference_mode():
            for _ in range(math.ceil(evals * scenario.data.eval_samples / batch)):
                model(inputs)
        return time.perf_counter() - started


def flower_noop(devices: int, device_rounds: int, scenario: Scenario) -> float:
    """Seconds per device-round for a ClientApp that answers at once, on Flower's Ray engine."""
    client = ClientApp()

    @client.train()
    def _train(message: Message, context: Context) -> Message:
        return Message(RecordDict({"m": ConfigRecord({"ok": 1})}), reply_to=message)

    server = ServerApp()
    result: dict[str, float] = {}

    @server.main()
    def _main(grid: Grid, context: Context) -> None:
        while len(nodes := sorted(int(n) for n in grid.get_node_ids())) < devices:
            time.sleep(0.1)
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
        result["per_round_s"] = (time.perf_counter() - started) / sent

    logging.getLogger("flwr").setLevel(logging.ERROR)
    run_simulation(
        server, client, num_supernodes=devices, backend_config=backend_config(scenario.engine)
    )
    return result["per_round_s"]


def cohort_path(scenario: Scenario, sizes: list[int], device: torch.device) -> Iterator[float]:
    """Seconds of one round of each cohort size through the batched path on ``device``."""
    pretrained, _ = pretrain_for(scenario, 0)
    weights = torch.load(pretrained, weights_only=True)
    model = new_model(scenario).to(device)
    params, labeled, shape, classes = fedavg_work(scenario)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(labeled, *shape, generator=generator)
    labels = torch.randint(0, classes, (labeled,), generator=generator)
    batch = torch.rand(scenario.data.eval_samples, *shape, generator=generator)
    train_cohort(model, [weights], [(inputs, labels)], params, [0], device)  # warm-up
    for size in sizes:
        started = time.perf_counter()
        train_cohort(
            model, [weights] * size, [(inputs, labels)] * size, params, list(range(size)), device
        )
        with torch.inference_mode():
            predict_cohort(model, [weights] * size, [batch] * size, device)
        yield time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/bigfleet.yaml")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--participation", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engines", default="inline,ray")
    parser.add_argument("--no-flower-noop", action="store_true")
    parser.add_argument("--cohorts", help="e.g. 100,1000,10000: time the batched cohort path")
    parser.add_argument("--cohort-device", default="cpu")
    args = parser.parse_args()
    if args.cohorts:
        base = with_methods(load_scenario(args.scenario), ["fedavg"], args.scenario)
        sizes = [int(n) for n in args.cohorts.split(",")]
        device = torch.device(args.cohort_device)
        bare = bare_loop(base, 200, 200) / 200  # one training and one evaluation per device
        print(
            f"{base.name}, batched cohort path on {device} (bare loop on the CPU: "
            f"{1 / bare:,.0f} device-rounds/s, one core)"
        )
        print(f"{'cohort':>8}{'device-rounds/s':>18}{'ms/device-round':>17}{'x bare loop':>13}")
        with fixed_threads(torch.get_num_threads()):
            for size, seconds in zip(sizes, cohort_path(base, sizes, device), strict=True):
                per = seconds / size
                print(
                    f"{size:>8}{1 / per:>18,.0f}{1e3 * per:>17.3f}{bare / per:>13.2f}", flush=True
                )
        return

    overrides = [
        f"fleet.devices={args.devices}",
        f"rounds.participation={args.participation}",
        f"rounds.count={args.rounds}",
    ]
    base = with_methods(load_scenario(args.scenario, overrides), ["fedavg"], args.scenario)
    rows = []
    counts = (0, 0)
    with tempfile.TemporaryDirectory() as out:
        for engine in args.engines.split(","):
            scenario = base.model_copy(
                update={"engine": base.engine.model_copy(update={"kind": engine})}
            )
            seconds, train, evals = engine_run(scenario, Path(out) / engine)
            counts = (train, evals)
            rows.append((engine, seconds / (train + evals)))
    train, evals = counts
    bare = bare_loop(base, train, evals) / (train + evals)
    print(
        f"{base.name}: {args.devices} devices, participation {args.participation}, "
        f"{args.rounds} rounds: {train} training + {evals} evaluation device-rounds per engine"
    )
    print(f"{'engine':<14}{'ms/device-round':>17}{'x bare loop':>13}")
    for engine, per in rows:
        print(f"{engine:<14}{1e3 * per:>17.2f}{per / bare:>13.2f}")
    print(f"{'bare loop':<14}{1e3 * bare:>17.2f}{1.0:>13.2f}")
    ceiling = batch_ceiling(base, train, evals) / (train + evals)
    print(f"{'batch ceiling':<14}{1e3 * ceiling:>17.2f}{ceiling / bare:>13.2f}")
    if not args.no_flower_noop:
        noop = flower_noop(args.devices, train + evals, base)
        print(f"{'flower-noop':<14}{1e3 * noop:>17.2f}{noop / bare:>13.2f}")


if __name__ == "__main__":
    main()
