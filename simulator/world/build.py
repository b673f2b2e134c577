"""The world a run happens in: scenario, fleet, data pools, streams, starting model.

A ``WorldSpec`` is small and picklable (it travels to every process that
simulates devices); ``World.get`` builds the world once per process from it
and caches it. Building is deterministic, so every process (the cloud, each
Ray worker, the inline engine) sees the same fleet and the same data. The
world knows nothing of methods or of Flower.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch

from basemodel.architecture import FleetModel, build_model, parameter_count
from basemodel.flops import flops_per_sample
from simulator.catalog.datasets import DatasetSpec, dataset_spec
from simulator.scenario.schema import Scenario
from simulator.world.fleet import DeviceProfile, build_fleet, device_behaviours
from simulator.world.network import Links
from simulator.world.replay import load_replay
from simulator.world.schedule import ContextSchedule
from simulator.world.sources import SampleSource, build_source
from simulator.world.stream import DeviceStreams
from simulator.world.traces import Behaviour
from simulator.world.transport import Transport


@dataclass(frozen=True)
class WorldSpec:
    """Everything needed to rebuild the world in another process.

    ``scenario_json`` is the resolved scenario (what keys and checkpoints
    name); ``scenario`` the validated model itself, which travels pickled with
    the spec so that no process validates it again (None: validated from the
    JSON where the world is built); ``pretrained_path`` the starting model's
    weights file.
    """

    scenario_json: str
    seed: int
    pretrained_path: str
    scenario: Scenario | None = field(default=None, compare=False, repr=False)


class World:
    """The fleet, its data and the starting model, built once per process per spec."""

    def __init__(self, spec: WorldSpec):
        self.spec = spec
        self.scenario: Scenario = spec.scenario or Scenario.model_validate_json(spec.scenario_json)
        self.seed = spec.seed
        self.fleet: list[DeviceProfile] = build_fleet(self.scenario, spec.seed)
        # Measured online windows per device (``fleet.traces.behaviour``), else None.
        self.behaviours: list[Behaviour] | None = device_behaviours(self.scenario, self.fleet)
        self.links = Links(
            self.scenario.fleet.network, len(self.fleet), spec.seed, self.behaviours is None
        )
        spec_transport = self.scenario.fleet.transport
        self.transport = Transport(spec_transport.runtime, spec_transport.request_s)
        self.dataset: DatasetSpec = dataset_spec(self.scenario.data.dataset)
        # The data split (or click catalogue) belongs to the pretraining seed (the cloud's
        # share trained the starting model), everything else to the simulation seed.
        self.source: SampleSource = build_source(
            self.scenario, spec.seed, pretrain_seed(self.scenario, spec.seed)
        )
        self.schedule = ContextSchedule(self.scenario, self.fleet, spec.seed)
        self.streams = DeviceStreams(self.scenario, self.source, spec.seed, self.schedule)
        self.model: FleetModel = new_model(self.scenario)
        self.pretrained: dict[str, torch.Tensor] = torch.load(
            spec.pretrained_path, weights_only=True
        )
        self.model.load_state_dict(self.pretrained)
        self.model.eval()
        shape = self.dataset.input_shape
        self.forward_flops = flops_per_sample(self.model, shape)
        self.backbone_flops = flops_per_sample(self.model.backbone, shape)

    def model_facts(self) -> dict[str, Any]:
        """The device model's size: what a run log, summary and report state."""
        return {
            "backbone": self.dataset.backbone,
            "width": self.scenario.model.width,
            "head": self.model.head.widths(),
            "parameters": parameter_count(self.model),
            "flops_per_sample": self.forward_flops,
        }

    @classmethod
    @lru_cache(maxsize=4)
    def get(cls, spec: WorldSpec) -> World:
        """The world of ``spec``, built once per process (the last few are kept)."""
        return cls(spec)


def model_words(scenario: Scenario) -> str:
    """The device model in a line: backbone, width, head, parameters, FLOPs per sample."""
    spec = dataset_spec(scenario.data.dataset)
    model = new_model(scenario)
    flops = flops_per_sample(model, spec.input_shape)
    head = ", ".join(str(w) for w in model.head.widths())
    return (
        f"{spec.backbone} at width {scenario.model.width:g}, head [{head}]: "
        f"{parameter_count(model):,} parameters, {flops:,.0f} FLOPs per sample"
    )


def pretrain_seed(scenario: Scenario, seed: int) -> int:
    """The pretraining seed of a run seed: ``pretrain.seed`` if set, else the run seed.

    It decides the starting model and the split of the dataset into the cloud's
    and the devices' pools; the run seed decides everything else.
    """
    return scenario.pretrain.seed if scenario.pretrain.seed is not None else seed


def new_model(scenario: Scenario) -> FleetModel:
    """A freshly initialised starting model: the dataset's backbone at ``model.width``."""
    spec = dataset_spec(scenario.data.dataset)
    options = None
    if spec.catalogue is not None:
        options = {"items": spec.catalogue.items}
    elif spec.ratings is not None and scenario.data.path is not None:
        options = {"items": load_replay(scenario.data.path, spec.ratings).num_items}
    model = scenario.model
    return build_model(
        spec.backbone,
        spec.input_shape,
        spec.num_classes,
        head_hidden=model.head_hidden,
        options=options,
        width=model.width,
    )
