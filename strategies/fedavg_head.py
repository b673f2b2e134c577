"""``fedavg-head``: Flower's FedAvg on the editable head only; the backbone stays frozen.

The control that makes bytes compare methods rather than payloads: it moves
what Persona edits (the head) and nothing else. Cloud: Flower's ``FedAvg``
over the head's arrays (the fleet's seeded sampling and update checks as for
``fedavg``). Device: download the global head, train it on the labeled recent
samples with the backbone frozen, upload it; the device runs the global head.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from basemodel.architecture import is_head_key
from strategies import wire
from strategies.base import (
    CloudSetup,
    DeviceStep,
    FleetStrategy,
    Method,
    NodeSampler,
    PerDeviceHalf,
    TrainOutcome,
)
from strategies.fedavg import FLEET_FEDAVG_ARGS, FleetSampling
from strategies.local_training import (
    LocalTrainingParams,
    head_training_flops,
    train_head,
    update_reply,
)


class FedAvgHeadParams(LocalTrainingParams):
    """The device's head training (``local_epochs``, ``lr``, ``batch_size``)."""


def head_only(arrays: ArrayRecord) -> ArrayRecord:
    """The head's arrays of a model's record (a head-only record is returned as it is)."""
    if all(is_head_key(key) for key in arrays):
        return arrays
    return ArrayRecord({key: arrays[key] for key in arrays if is_head_key(key)})


class FleetFedAvgHead(FleetSampling, FedAvg, FleetStrategy):
    """Flower's FedAvg over the head's arrays, with the run's seeded sampler."""

    def __init__(self, sample_nodes: NodeSampler):
        super().__init__(**FLEET_FEDAVG_ARGS)
        self._use_sampler(sample_nodes)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return FleetSampling.configure_train(self, server_round, head_only(arrays), config, grid)


class FedAvgHeadDevice(PerDeviceHalf):
    """Train the downloaded head on the frozen factory backbone; upload the head."""

    def train_one(self, step: DeviceStep) -> TrainOutcome:
        assert isinstance(step.params, LocalTrainingParams)
        global_head = step.arrays.torch(step.content[wire.ARRAYS])
        model = step.kit.load(global_head)
        x, y = step.labeled
        trained, loss, passes = train_head(model, x, y, step.params, step.seed)
        flops = head_training_flops(
            step.kit.forward_flops_per_sample, global_head, len(y), step.params.local_epochs
        )
        return TrainOutcome(update_reply(trained, len(y), loss), global_head, flops, passes)


def _cloud(setup: CloudSetup) -> FleetFedAvgHead:
    return FleetFedAvgHead(setup.sample_nodes)


METHOD = Method(
    name="fedavg-head",
    colour="#08306b",
    summary="Flower FedAvg on the head only (frozen backbone): head up and down",
    params=FedAvgHeadParams,
    cloud=_cloud,
    device=FedAvgHeadDevice(),
)
