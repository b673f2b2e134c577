"""``cloud-retrain``: the cloud retrains the model on all its data and pushes it to devices.

The natural competitor of a cloud that knows the shift family: instead of
learning to edit, the cloud trains the shared starting model further on
everything it holds (its base share and its family share, under every
context it knows), then ships the whole model. Each round the sampled devices
that do not hold it yet download it (billed like any download, so on a slow
link it arrives late and a missed deadline means another try); a device runs
it from then on. No labels and no backprop on the device.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from pydantic import Field

from basemodel.pretraining import PretrainConfig, pretrained_state
from basemodel.resources import CloudResources
from basemodel.threads import fixed_threads
from strategies import wire
from strategies.base import (
    CloudSetup,
    DeviceStep,
    FleetStrategy,
    Method,
    MethodParams,
    NodeSampler,
    PerDeviceHalf,
    TrainOutcome,
    Weights,
    messages_to,
)
from strategies.records import record_of

log = logging.getLogger("persona_fleet")


class CloudRetrainParams(MethodParams):
    """The cloud's retraining: ``epochs`` of Adam at ``lr`` over all its data."""

    epochs: int = Field(default=3, ge=0, le=100)
    lr: float = Field(default=1e-3, gt=0)
    batch_size: int = Field(default=64, ge=1)


def retrained_weights(resources: CloudResources, params: CloudRetrainParams) -> Weights:
    """The starting model trained further on the base and family shares (cached)."""
    base_x, base_y = resources.base.rendered()
    family_x, family_y = resources.family.rendered()
    images, labels = torch.cat([base_x, family_x]), torch.cat([base_y, family_y])
    model = resources.model
    description = {
        "retrain-of": resources.pretrained_key,
        "base": resources.base.context_names,
        "family": resources.family.context_names,
    }
    config = PretrainConfig(epochs=params.epochs, batch_size=params.batch_size, lr=params.lr)
    with fixed_threads():
        weights, path = pretrained_state(
            model, images, labels, config, resources.seed, description, label="cloud-retrain model"
        )
    log.info("cloud-retrain model: cache key %s", path.stem.removeprefix("pretrained-"))
    return weights


class CloudRetrainStrategy(FleetStrategy):
    """Pushes the retrained model to each sampled device that does not hold it yet."""

    def __init__(
        self, sample_nodes: NodeSampler, device_of: Callable[[int], int], weights: Weights
    ):
        self._sample_nodes = sample_nodes
        self._device_of = device_of
        self._record = record_of(weights)  # built once, sent to every device that needs it
        self.holders: set[int] = set()  # fleet devices that hold the retrained model

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        lacking = [
            n for n in self._sample_nodes(server_round) if self._device_of(n) not in self.holders
        ]
        return messages_to(lacking, RecordDict({wire.ARRAYS: self._record}))

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        arrived = [self._device_of(int(r.metadata.src_node_id)) for r in replies]
        self.holders.update(arrived)
        return None, MetricRecord({"delivered": len(arrived), "holders": len(self.holders)})

    def checkpoint_state(self) -> dict[str, Any]:
        return {"holders": sorted(self.holders)}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.holders = {int(d) for d in state["holders"]}


class CloudRetrainDevice(PerDeviceHalf):
    """Keep the downloaded model; nothing to compute, nothing to send back."""

    def train_one(self, step: DeviceStep) -> TrainOutcome:
        return TrainOutcome(RecordDict(), step.arrays.torch(step.content[wire.ARRAYS]), 0.0, 0)


def _cloud(setup: CloudSetup) -> CloudRetrainStrategy:
    assert isinstance(setup.params, CloudRetrainParams)
    weights = retrained_weights(setup.resources, setup.params)
    return CloudRetrainStrategy(setup.sample_nodes, setup.device_of, weights)


METHOD = Method(
    name="cloud-retrain",
    colour="#8c564b",
    summary="the cloud retrains on all its data (family included) and pushes the model",
    params=CloudRetrainParams,
    cloud=_cloud,
    device=CloudRetrainDevice(),
)
