"""What a lightweight device model leaves on the table, from the best model the cloud can make.

For each ``model.width``, pretrains (or loads from the cache) the scenario's
starting model in its regime (``cloud-best`` by default: the cloud's base
share, clean and under every family context) and prints its accuracy on the
devices' test pool: clean, under each context the cloud knows (the family),
and under contexts it never saw (in-between and stronger severities of the
family's kinds, and other kinds). The gap between the known and the unknown
columns, and how it grows as the model shrinks, is the headroom an adaptation
method can win back from a sensible deployment. Usage:

    python benchmarks/capacity_headroom.py --widths 0.25 0.5 1
    python benchmarks/capacity_headroom.py --scenario scenarios/lowbandwidth.yaml \\
        --unknown rotation=45 rotation=90 blur=1.5 --seed 0

Every figure is measured here; nothing is taken from elsewhere.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from basemodel.architecture import parameter_count
from basemodel.flops import flops_per_sample
from simulator.catalog.datasets import load_dataset
from simulator.scenario.loading import load_scenario
from simulator.world.build import new_model
from simulator.world.cloud import pretrain_for
from simulator.world.drift import ActiveShift, transform
from simulator.world.partition import split_pools

# Contexts the flagship's cloud has no data under: between and beyond its family's
# severities, and kinds it never saw.
UNKNOWN = (
    "rotation=45",
    "rotation=90",
    "noise=0.45",
    "noise=0.9",
    "contrast=0.65",
    "contrast=0.9",
    "blur=1.5",
    "brightness=0.4",
    "occlusion=0.4",
)


def parse_context(text: str) -> tuple[str, float]:
    kind, _, severity = text.partition("=")
    return kind, float(severity)


def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.inference_mode():
        predicted = torch.cat(
            [model(images[i : i + 512]).argmax(1) for i in range(0, len(images), 512)]
        )
    return float((predicted == labels).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/lowbandwidth.yaml")
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unknown", nargs="+", default=list(UNKNOWN), help="KIND=SEVERITY ...")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    base = load_scenario(args.scenario, args.overrides)
    dataset = load_dataset(base.data.dataset)
    pools = split_pools(dataset, base.data, args.seed)
    test = torch.as_tensor(np.sort(np.concatenate(pools.device_test_by_class)))
    images, labels = dataset.images[test], dataset.labels[test]
    known = [(c.kind, float(c.severity)) for c in base.pretrain.family]
    unknown = [parse_context(t) for t in args.unknown]

    def rendered(context: tuple[str, float], index: int) -> torch.Tensor:
        return transform(images, [ActiveShift(*context)], args.seed, "capacity-headroom", index)

    views = {"clean": images}
    views |= {f"{k}={s:g}": rendered((k, s), i) for i, (k, s) in enumerate(known)}
    views |= {f"{k}={s:g}": rendered((k, s), 100 + i) for i, (k, s) in enumerate(unknown)}
    known_names = [f"{k}={s:g}" for k, s in known]
    unknown_names = [f"{k}={s:g}" for k, s in unknown]
    print(
        f"{base.name}: {base.data.dataset}, starting model {base.pretrain.starting_model}, "
        f"seed {args.seed}, {len(labels)} test samples per context"
    )
    print(f"known (family): {', '.join(known_names)}")
    print(f"unknown: {', '.join(unknown_names)}")
    rows = []
    for width in args.widths:
        scenario = load_scenario(args.scenario, [*args.overrides, f"model.width={width}"])
        started = time.perf_counter()
        path, _ = pretrain_for(scenario, args.seed)
        model = new_model(scenario)
        model.load_state_dict(torch.load(path, weights_only=True))
        model.eval()
        scores = {name: accuracy(model, x, labels) for name, x in views.items()}
        rows.append((width, model, scores, time.perf_counter() - started))
    shape = dataset.images.shape[1:]
    head = "| width | parameters | FLOPs/sample | clean | known | unknown | known - unknown |"
    print("\n" + head + "\n|" + "---|" * 7)
    for width, model, scores, _ in rows:
        k = float(np.mean([scores[n] for n in known_names])) if known_names else float("nan")
        u = float(np.mean([scores[n] for n in unknown_names]))
        print(
            f"| {width:g} | {parameter_count(model):,} | "
            f"{flops_per_sample(model, tuple(shape)):,.0f} | {100 * scores['clean']:.1f} | "
            f"{100 * k:.1f} | {100 * u:.1f} | {100 * (k - u):+.1f} |"
        )
    names = ["clean", *known_names, *unknown_names]
    print("\nper context (accuracy %):\n| width | " + " | ".join(names) + " |")
    print("|" + "---|" * (len(names) + 1))
    for width, _, scores, seconds in rows:
        cells = " | ".join(f"{100 * scores[n]:.1f}" for n in names)
        print(f"| {width:g} | {cells} |  ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
