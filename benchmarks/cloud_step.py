"""Persona's cloud step: one batched adapter pass for a round's devices, timed.

Builds the flagship's adapter shape (MNIST backbone features in, the editable
head's layers out) with a prototype bank, and times ``PersonaCloud.respond``
(codes, assignment, clipped edits, refinement) for cohorts of 1,000 to
100,000 devices, on the CPU and, when one is present, on a CUDA GPU (as a run with
``cloud.device: cuda`` does: summaries arrive and answers leave on the CPU, so
the time includes both copies). The adapter's weights are seeded random (the
cost does not depend on them). Prints milliseconds per round, devices per
second, the FLOPs counted per round and, on the GPU, how far its answers are
from the CPU's, and the GPU's time for the same pass with its inputs and
results left on the GPU. Usage:

    python benchmarks/cloud_step.py [--devices 1000 10000 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from basemodel.architecture import build_model
from basemodel.cloud_device import HOST, deterministic_kernels, resolve_cloud_device
from persona.adapter import AdapterConfig, PersonaAdapter
from persona.cloud import DeployRules, PersonaCloud
from persona.prototypes import PrototypeBank, RefineConfig


def make_cloud(device: torch.device, prototypes: int, assignment: str) -> tuple[PersonaCloud, int]:
    """The flagship-shaped cloud with seeded random weights, placed on ``device``."""
    torch.manual_seed(0)
    widths = build_model("conv28", (1, 28, 28), 10).head.widths()
    config = AdapterConfig(feature_dim=widths[0], head_widths=tuple(widths))
    adapter = PersonaAdapter(config, prototypes=prototypes)
    heads = [
        (torch.randn(prototypes, o, i), torch.randn(prototypes, o))
        for i, o in zip(widths[:-1], widths[1:], strict=True)
    ]
    centroids = torch.randn(prototypes, config.layers * config.code_dim)
    bank = PrototypeBank(centroids, heads, list(range(prototypes)), [0] * prototypes)
    refine = RefineConfig(enabled=False)
    cloud = PersonaCloud(adapter, bank, refine, DeployRules(assignment), device=device)
    return cloud, widths[0]


def time_round(cloud: PersonaCloud, summaries: torch.Tensor, repeats: int) -> float:
    """Seconds per ``respond`` (summaries in on the CPU, answers out on the CPU, as in a run)."""
    cloud.respond(summaries, 1)  # warm-up (kernel selection, allocations)
    started = time.perf_counter()
    for _ in range(repeats):
        cloud.respond(summaries, 1)  # its answers are CPU tensors: the GPU has finished
    return (time.perf_counter() - started) / repeats


@torch.no_grad()
def time_device_pass(cloud: PersonaCloud, summaries: torch.Tensor, repeats: int) -> float:
    """Seconds per codes, assignment and edits with summaries already on the GPU, results kept
    there: what the GPU itself takes, without the copies in and out."""
    on_device = summaries.to(cloud.device)

    def device_pass() -> None:
        layer_codes = cloud.adapter.codes(on_device)[1]
        cloud.adapter.generators(layer_codes, cloud.assign(layer_codes, layer_codes.flatten(1)))

    device_pass()
    torch.cuda.synchronize(cloud.device)
    started = time.perf_counter()
    for _ in range(repeats):
        device_pass()
    torch.cuda.synchronize(cloud.device)
    return (time.perf_counter() - started) / repeats


def disagreement(reference: list, other: list) -> tuple[float, float]:
    """Share of devices given another prototype, and the largest edit difference."""
    moved = sum(a.proto_id != b.proto_id for a, b in zip(reference, other, strict=True))
    largest = max(
        float((x - y).abs().max())
        for (x_w, x_b), (y_w, y_b) in zip(reference[0].batch, other[0].batch, strict=True)
        for x, y in ((x_w, y_w), (x_b, y_b))
    )
    return moved / len(reference), largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--prototypes", type=int, default=4)
    parser.add_argument("--assignment", default="nearest", choices=("nearest", "smallest-edit"))
    args = parser.parse_args()
    targets = [HOST]
    if torch.cuda.is_available():
        targets.append(resolve_cloud_device("cuda"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; targets: {targets}")
    features = make_cloud(HOST, args.prototypes, args.assignment)[1]
    for count in args.devices:
        seeded = torch.Generator().manual_seed(1)
        summaries = torch.randn(count, args.window, features, generator=seeded)
        reference = None
        for device in targets:
            cloud = make_cloud(device, args.prototypes, args.assignment)[0]
            name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
            with deterministic_kernels(device), FlopCounterMode(display=False) as counter:
                answers, _ = cloud.respond(summaries, 1)
            with deterministic_kernels(device):
                seconds = time_round(cloud, summaries, args.repeats)
            line = (
                f"{name:<24} {count:>7} devices: {1000 * seconds:9.1f} ms per round, "
                f"{count / seconds:12,.0f} devices/s, {counter.get_total_flops():.3g} FLOPs"
            )
            if reference is None:
                reference = answers
            else:
                with deterministic_kernels(device):
                    alone = time_device_pass(cloud, summaries, args.repeats)
                moved, largest = disagreement(reference, answers)
                line += (
                    f" ({1000 * alone:.2f} ms without the host copies); vs cpu: {moved:.2%} "
                    f"other prototype, edits differ by <= {largest:.2g}"
                )
            print(line, flush=True)


if __name__ == "__main__":
    main()
