"""The same FedAvg workload in this project's engines, in Flower's runtime, and in pfl-research.

    python benchmarks/peers.py [--devices 200] [--cohort 20] [--rounds 10]
        [--peers-python PATH]   # an interpreter with pfl-research (pip install -e ".[peers]")

The workload is the flagship's (``scenarios/lowbandwidth.yaml``): MNIST, its
lightweight conv model (``model.width: 0.25``), its Dirichlet partition over
the devices and FedAvg's tuned settings (2 local epochs, SGD at 0.01,
batches of 16) on a 32-sample window, with every sample labeled and no drift,
so that every device-round is the same work everywhere: 32 samples, 4 SGD
steps. The runners:

- ``inline`` and ``ray``: this project's engines (which also simulate each
  device's link, clock, energy and metering, and the fleet's evaluation);
- ``flower``: Flower's simulation runtime (``flwr.simulation.run_simulation``),
  one ClientApp call per device, each doing the same training; this is the
  project's ``flower`` engine, so its ClientApp also meters as the others do;
- ``pfl``: pfl-research's simulated FedAvg (``pfl.algorithm.FederatedAveraging``
  on its ``SimulatedBackend``), each user one device's first window.

Each runs in its own process (so its peak memory is its own) with one torch
thread (``ray`` spreads its shards over the machine's cores), and prints
wall seconds per device-round of training rounds 2 to R (the first round's
warm-up, evaluation ticks and start-up excluded), the process's peak RSS,
and the final global model's accuracy on the evaluated devices' test samples, so that equal work is
checked rather than assumed. A runner that cannot be imported is named and
skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "lowbandwidth.yaml"
RUNNERS = ("inline", "ray", "flower", "pfl")


def workload(devices: int, cohort: int, rounds: int, engine: str) -> list[str]:
    """The overrides that turn the flagship into the benchmark's fixed FedAvg workload."""
    return [
        f"fleet.devices={devices}",
        "fleet.network.outage_probability=0",
        "data.labeled_fraction=1.0",
        "data.label_delay_s=0",
        "schedule=null",
        f"rounds.count={rounds}",
        "rounds.period_s=60",
        f"rounds.participation={cohort / devices}",
        "rounds.deadline_s=1000000",
        f"rounds.eval_every_s={rounds * 60}",
        f"rounds.eval_devices={min(100, devices)}",
        "methods=[{name: fedavg, params: {local_epochs: 2, lr: 0.01, batch_size: 16}}]",
        f"engine.kind={engine}",
    ]


def _scenario(args: argparse.Namespace, engine: str) -> Any:
    from simulator.scenario.loading import load_scenario

    return load_scenario(SCENARIO, workload(args.devices, args.cohort, args.rounds, engine))


def _world(scenario: Any) -> Any:
    import json as json_module

    from simulator.scenario.loading import scenario_to_document
    from simulator.world.build import World, WorldSpec
    from simulator.world.cloud import pretrain_for

    pretrained, _ = pretrain_for(scenario, scenario.seed)
    text = json_module.dumps(scenario_to_document(scenario), sort_keys=True)
    return World(WorldSpec(text, scenario.seed, str(pretrained), scenario)), text


def global_accuracy(world: Any, weights: dict) -> float:
    """The model ``weights`` scored on every evaluated device's final test samples."""
    import torch

    from simulator.engine.sampling import DeviceSampler

    model = world.model
    model.load_state_dict(weights)
    model.eval()
    horizon = world.scenario.rounds.horizon_s
    scores = []
    with torch.inference_mode():
        for device in DeviceSampler(world).eval_devices():
            x, y = world.streams.eval_batch(world.fleet[device], horizon)
            scores.append(float((model(x).argmax(dim=1) == y).float().mean()))
    return sum(scores) / len(scores)


def run_engine(args: argparse.Namespace, engine: str) -> dict[str, Any]:
    """This project's engine on the workload: the cloud loop as a run drives it."""
    from flwr.app import ArrayRecord

    from simulator.engine.deployment import Deployment, DeploymentSpec
    from simulator.engine.launch import engine_session
    from simulator.engine.rounds import RoundLoop

    scenario = _scenario(args, engine)
    world, _ = _world(scenario)
    spec = DeploymentSpec(world.spec, "fedavg")
    rows: list[dict[str, Any]] = []
    loop = RoundLoop(Deployment.get(spec), ArrayRecord(world.pretrained), rows)
    with engine_session(scenario.engine) as session:
        session.run(spec, len(world.fleet), loop.run)
    rounds = [r for r in rows if r["kind"] == "round"]
    assert loop.final_arrays is not None
    final = {k: v.clone() for k, v in loop.final_arrays.to_torch_state_dict().items()}
    return {  # rows hold the loop's wall clock at each round's end: rounds 2..R are timed
        "device_rounds": sum(r["kept"] for r in rounds[1:]),
        "train_wall_s": rounds[-1]["wall_s"] - rounds[0]["wall_s"],
        "accuracy": global_accuracy(world, final),
        "start_accuracy": global_accuracy(world, world.pretrained),
    }


def run_pfl(args: argparse.Namespace) -> dict[str, Any]:
    """pfl-research's simulated FedAvg on the same devices' windows, model and settings."""
    import torch
    from pfl.aggregate.simulate import SimulatedBackend
    from pfl.algorithm import FederatedAveraging, NNAlgorithmParams
    from pfl.callback.base import TrainingProcessCallback
    from pfl.data.dataset import Dataset
    from pfl.data.federated_dataset import FederatedDataset
    from pfl.data.sampling import get_user_sampler
    from pfl.hyperparam import NNEvalHyperParams, NNTrainHyperParams
    from pfl.metrics import Metrics, Weighted
    from pfl.model.pytorch import PyTorchModel

    scenario = _scenario(args, "inline")
    world, _ = _world(scenario)
    windows = {}
    for profile in world.fleet:
        window = world.streams.window(profile, 0.0)
        windows[profile.index] = (window.labeled_x, window.labeled_y)

    class Trainable(torch.nn.Module):
        """The device model with the two methods pfl calls on it."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

        def loss(self, x: torch.Tensor, y: torch.Tensor, eval: bool = False) -> torch.Tensor:
            self.train(not eval)
            return torch.nn.functional.cross_entropy(self.inner(x), y)

        def metrics(self, x: torch.Tensor, y: torch.Tensor, eval: bool = False) -> dict:
            self.eval()
            with torch.no_grad():
                loss = torch.nn.functional.cross_entropy(self.inner(x), y, reduction="sum")
            return {"loss": Weighted(float(loss), len(y))}

    module = Trainable(world.model)
    module.inner.load_state_dict(world.pretrained)
    model = PyTorchModel(
        model=module,
        local_optimizer_create=torch.optim.SGD,
        central_optimizer=torch.optim.SGD(module.parameters(), lr=1.0),  # FedAvg: the mean
    )
    users = sorted(windows)
    data = FederatedDataset(
        make_dataset_fn=lambda user: Dataset(raw_data=list(windows[user])),
        user_sampler=get_user_sampler("random", users),
    )
    backend = SimulatedBackend(training_data=data, val_data=data)
    params = NNAlgorithmParams(
        central_num_iterations=args.rounds,
        evaluation_frequency=args.rounds + 1,
        train_cohort_size=args.cohort,
        val_cohort_size=0,
    )
    train = NNTrainHyperParams(local_num_epochs=2, local_learning_rate=0.01, local_batch_size=16)

    class Clock(TrainingProcessCallback):
        """The wall clock at the end of each central iteration (rounds 2..R are timed)."""

        def __init__(self) -> None:
            self.stamps: list[float] = []

        def after_central_iteration(self, aggregate_metrics, model, *, central_iteration):
            self.stamps.append(time.perf_counter())
            return False, Metrics()

    clock = Clock()
    FederatedAveraging().run(
        algorithm_params=params,
        backend=backend,
        model=model,
        model_train_params=train,
        model_eval_params=NNEvalHyperParams(local_batch_size=256),
        callbacks=[clock],
    )
    final = {k: v.detach().clone() for k, v in module.inner.state_dict().items()}
    return {
        "device_rounds": (args.rounds - 1) * args.cohort,  # pfl drops no user: C per round
        "train_wall_s": clock.stamps[-1] - clock.stamps[0],
        "accuracy": global_accuracy(world, final),
        "start_accuracy": global_accuracy(world, world.pretrained),
    }


def one(args: argparse.Namespace) -> None:
    """Run one runner in this process and print its figures as one JSON line."""
    import torch

    torch.set_num_threads(1)
    try:
        figures = run_pfl(args) if args.one == "pfl" else run_engine(args, args.one)
    except ModuleNotFoundError as err:  # a peer not installed; any other error is raised
        if (err.name or "").split(".")[0] not in ("pfl", "ray", "flwr"):
            raise
        print(json.dumps({"runner": args.one, "missing": str(err)}))
        return
    figures["runner"] = args.one
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--cohort", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runners", default=",".join(RUNNERS))
    parser.add_argument("--peers-python", default=sys.executable, help="interpreter for pfl")
    parser.add_argument("--one", choices=RUNNERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        one(args)
        return
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    results = []
    for runner in args.runners.split(","):
        python = args.peers_python if runner == "pfl" else sys.executable
        command = [python, __file__, "--one", runner, "--devices", str(args.devices)]
        command += ["--cohort", str(args.cohort), "--rounds", str(args.rounds)]
        done = subprocess.run(command, capture_output=True, text=True, env=environment)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{runner}: failed ({tail})", flush=True)
            continue
        figures = json.loads(lines[-1])
        if "missing" in figures:
            print(f"{runner}: not installed here ({figures['missing']})", flush=True)
            continue
        results.append(figures)
        print(json.dumps(figures), flush=True)
    print(
        f"\nFedAvg, {args.devices} devices, cohort {args.cohort}, {args.rounds} rounds "
        "(32 samples, 2 epochs, batches of 16 per device-round)"
    )
    if results:
        print(f"(the starting model scores {results[0]['start_accuracy']:.4f} on the same samples)")
    print("| runner | ms per device-round | peak RSS (MB) | final global accuracy |")
    print("| --- | --- | --- | --- |")
    for figures in results:
        per = 1000 * figures["train_wall_s"] / max(1, figures["device_rounds"])
        print(
            f"| {figures['runner']} | {per:.2f} | {figures['peak_rss_mb']:,.0f} | "
            f"{figures['accuracy']:.4f} |"
        )


if __name__ == "__main__":
    main()
