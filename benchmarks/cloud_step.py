"""Persona's cloud step: one batched adapter pass for a round's devices, timed.

Builds the flagship's adapter shape (MNIST backbone features in, the editable
head's layers out) with a prototype bank, and times ``PersonaCloud.respond``
(codes, assignment, clipped edits, refinement) for cohorts of 100 to 10,000
devices, on the CPU and, when one is present, on a CUDA GPU. The adapter's
weights are random (the cost does not depend on them). Prints milliseconds
per round, devices per second and the FLOPs counted per round. Usage:

    python benchmarks/cloud_step.py [--devices 100 1000 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from basemodel.architecture import build_model
from persona.adapter import AdapterConfig, PersonaAdapter
from persona.cloud import DeployRules, PersonaCloud
from persona.prototypes import PrototypeBank, RefineConfig


def make_cloud(device: str, prototypes: int, assignment: str) -> tuple[PersonaCloud, int]:
    widths = build_model("conv28", (1, 28, 28), 10).head.widths()
    config = AdapterConfig(feature_dim=widths[0], head_widths=tuple(widths))
    adapter = PersonaAdapter(config, prototypes=prototypes).to(device)
    heads = [
        (torch.randn(prototypes, o, i, device=device), torch.randn(prototypes, o, device=device))
        for i, o in zip(widths[:-1], widths[1:], strict=True)
    ]
    centroids = torch.randn(prototypes, config.layers * config.code_dim, device=device)
    bank = PrototypeBank(centroids, heads, list(range(prototypes)), [0] * prototypes)
    refine = RefineConfig(enabled=False)
    return PersonaCloud(adapter, bank, refine, DeployRules(assignment)), widths[0]


def time_round(cloud: PersonaCloud, summaries: torch.Tensor, repeats: int) -> float:
    cloud.respond(summaries, 1)  # warm-up (kernel selection, allocations)
    if summaries.is_cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        cloud.respond(summaries, 1)
    if summaries.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--prototypes", type=int, default=4)
    parser.add_argument("--assignment", default="nearest", choices=("nearest", "smallest-edit"))
    args = parser.parse_args()
    targets = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; targets: {targets}")
    for device in targets:
        name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
        cloud, features = make_cloud(device, args.prototypes, args.assignment)
        for count in args.devices:
            summaries = torch.randn(count, args.window, features, device=device)
            with FlopCounterMode(display=False) as counter:
                cloud.respond(summaries, 1)
            seconds = time_round(cloud, summaries, args.repeats)
            print(
                f"{name:<24} {count:>7} devices: {1000 * seconds:9.1f} ms per round, "
                f"{count / seconds:12,.0f} devices/s, {counter.get_total_flops():.3g} FLOPs"
            )


if __name__ == "__main__":
    main()
