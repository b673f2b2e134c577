"""The world a run happens in: scenario, fleet, data pools, streams, starting model.

A ``WorldSpec`` is small and picklable (it travels with every ClientApp call on
Ray); ``World.get`` builds the world once per process from it and caches it.
Building is deterministic, so every process (the cloud, each Ray actor, the
inline engine) sees the same fleet and the same data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from persona.models import FleetModel, build_model
from persona.pretrain import PretrainConfig, pretrained_state
from persona.training import Transform
from simulator.datasets import ImageDataset, load_dataset
from simulator.drift import ActiveShift, transform
from simulator.fleet import DeviceProfile, build_fleet
from simulator.metering import flops_per_sample
from simulator.partition import Pools, split_pools
from simulator.scenario import Scenario, parse_scenario
from simulator.seeding import rng_for, torch_seed_for
from simulator.stream import DeviceStreams
from strategies.base import CloudResources, Method, MethodParams, fixed_threads
from strategies.registry import get_method, validate_params


@dataclass(frozen=True)
class WorldSpec:
    """Everything needed to rebuild the world in another process (JSON-able values only)."""

    scenario_json: str
    seed: int
    method: str
    pretrained_path: str

    @property
    def key(self) -> tuple[str, int, str, str]:
        return (self.scenario_json, self.seed, self.method, self.pretrained_path)


class World:
    """The fleet, its data and the starting model, built once per process per spec."""

    _cache: ClassVar[dict[tuple[str, int, str, str], World]] = {}

    def __init__(self, spec: WorldSpec):
        self.spec = spec
        self.scenario: Scenario = parse_scenario(json.loads(spec.scenario_json), "<world>")
        self.seed = spec.seed
        self.fleet: list[DeviceProfile] = build_fleet(self.scenario, spec.seed)
        self.dataset: ImageDataset = load_dataset(self.scenario.data.dataset)
        self.pools: Pools = split_pools(self.dataset, self.scenario.data, spec.seed)
        self.streams = DeviceStreams(self.scenario, self.dataset, self.pools, spec.seed)
        self.method: Method = get_method(spec.method)
        params = next(m.params for m in self.scenario.methods if m.name == spec.method)
        self.params: MethodParams = validate_params(spec.method, params)
        self.model: FleetModel = new_model(self.dataset)
        self.pretrained = torch.load(spec.pretrained_path, weights_only=True)
        self.model.load_state_dict(self.pretrained)
        self.model.eval()
        shape = tuple(self.dataset.images.shape[1:])
        self.forward_flops = flops_per_sample(self.model, shape)
        self.backbone_flops = flops_per_sample(self.model.backbone, shape)

    def cloud_resources(self) -> CloudResources:
        """The cloud's side of the world: starting model, its data, known contexts."""
        images, labels = cloud_data(self.scenario, self.seed, "adapter")
        transforms, names = known_contexts(self.scenario, self.seed)
        model = new_model(self.dataset)
        model.load_state_dict(self.pretrained)
        return CloudResources(
            model=model.eval(),
            images=images,
            labels=labels,
            num_classes=self.dataset.num_classes,
            contexts=transforms,
            context_names=names,
            dirichlet_alpha=self.scenario.data.dirichlet_alpha,
            window=self.scenario.data.window,
            pretrained_key=Path(self.spec.pretrained_path).stem.removeprefix("pretrained-"),
        )

    @classmethod
    def get(cls, spec: WorldSpec) -> World:
        world = cls._cache.get(spec.key)
        if world is None:
            if len(cls._cache) >= 4:
                cls._cache.clear()
            world = cls._cache[spec.key] = World(spec)
        return world


def new_model(dataset: ImageDataset) -> FleetModel:
    return build_model(dataset.image_size, dataset.num_classes)


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


def pretrain_for(scenario: Scenario, seed: int, cache_dir: Path | None = None) -> tuple[Path, str]:
    """Pretrain (or load from cache) the shared starting model; returns its file and key.

    The training set is the cloud's data, clean and under every known context.
    """
    dataset = load_dataset(scenario.data.dataset)
    with torch.random.fork_rng():
        torch.manual_seed(torch_seed_for(seed, "model-init"))
        model = new_model(dataset)
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
