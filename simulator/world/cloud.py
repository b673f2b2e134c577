"""The cloud's side of the world: its own data, the contexts it knows, the starting model.

The cloud holds a share of the base dataset (``data.cloud_fraction``), split
again into the starting model's training data and a part held out for
methods with a cloud-side learner (``pretrain.adapter_fraction``). It can
render its data under every known context (``pretrain.contexts``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from basemodel.pretraining import PretrainConfig, pretrained_state
from basemodel.resources import CloudResources, Transform
from basemodel.threads import fixed_threads
from simulator.scenario.schema import Scenario
from simulator.world.build import World, new_model
from simulator.world.datasets import load_dataset
from simulator.world.drift import ActiveShift, transform
from simulator.world.partition import split_pools
from simulator.world.seeding import rng_for, torch_seed_for


def known_contexts(scenario: Scenario, seed: int) -> tuple[list[Transform], list[str]]:
    """The cloud's known contexts as image transforms: the clean source first."""
    transforms: list[Transform] = [lambda images: images]
    names = ["clean"]
    for i, context in enumerate(scenario.pretrain.contexts):
        shift = [ActiveShift(context.kind, context.severity)]
        transforms.append(
            lambda images, shift=shift, i=i: transform(images, shift, seed, "known-context", i)
        )
        names.append(f"{context.kind}={context.severity:g}")
    return transforms, names


def cloud_data(scenario: Scenario, seed: int, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The cloud's own (clean) images and labels: the ``"base"`` model's share or the
    ``"adapter"`` share held out from it (``pretrain.adapter_fraction``)."""
    dataset = load_dataset(scenario.data.dataset)
    cloud = split_pools(dataset, scenario.data, seed).cloud
    held_out = int(round(scenario.pretrain.adapter_fraction * len(cloud)))
    order = rng_for(seed, "cloud-split").permutation(len(cloud))
    chosen = order[:held_out] if part == "adapter" else order[held_out:]
    if part == "adapter" and held_out == 0:
        chosen = order  # nothing held out: adaptation trains on the base model's data
    indices = torch.as_tensor(cloud[np.sort(chosen)])
    return dataset.images[indices], dataset.labels[indices]


def cloud_resources(world: World) -> CloudResources:
    """What a method's cloud half may use: the starting model, held-out data, contexts."""
    scenario, seed = world.scenario, world.seed
    images, labels = cloud_data(scenario, seed, "adapter")
    transforms, names = known_contexts(scenario, seed)
    model = new_model(scenario)
    model.load_state_dict(world.pretrained)
    return CloudResources(
        model=model.eval(),
        images=images,
        labels=labels,
        num_classes=world.dataset.num_classes,
        contexts=transforms,
        context_names=names,
        dirichlet_alpha=scenario.data.dirichlet_alpha,
        window=scenario.data.window,
        pretrained_key=Path(world.spec.pretrained_path).stem.removeprefix("pretrained-"),
    )


def pretrain_for(scenario: Scenario, seed: int, cache_dir: Path | None = None) -> tuple[Path, str]:
    """Pretrain (or load from cache) the shared starting model; returns its file and key.

    The training set is the cloud's data, clean and under every known context.
    """
    dataset = load_dataset(scenario.data.dataset)
    with torch.random.fork_rng():
        torch.manual_seed(torch_seed_for(seed, "model-init"))
        model = new_model(scenario)
    config = PretrainConfig(
        epochs=scenario.pretrain.epochs,
        batch_size=scenario.pretrain.batch_size,
        lr=scenario.pretrain.lr,
    )
    description: dict[str, Any] = {
        "dataset": dataset.name,
        "model": type(model.backbone).__name__,
        "cloud_fraction": scenario.data.cloud_fraction,
        "test_fraction": scenario.data.test_fraction,
        "contexts": [c.model_dump() for c in scenario.pretrain.contexts],
        "adapter_fraction": scenario.pretrain.adapter_fraction,
        "format": 3,
    }
    images, labels = cloud_data(scenario, seed, "base")
    transforms, _ = known_contexts(scenario, seed)
    all_images = torch.cat([t(images) for t in transforms])
    all_labels = labels.repeat(len(transforms))
    with fixed_threads():  # the same weights on every machine and engine
        _, path = pretrained_state(
            model, all_images, all_labels, config, seed, description, cache_dir
        )
    return path, path.stem.removeprefix("pretrained-")
