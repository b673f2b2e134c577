"""``finetune``: every sampled device fine-tunes its own copy; nothing is uploaded.

Cloud: picks which devices train this round (the same seeded sampling as every
method) and sends them an empty instruction. Device: continues from the model
it holds (the factory model at first), trains ``local_epochs`` on its labeled
recent samples and keeps the result. No weights travel in either direction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid

from basemodel.flops import training_flops
from strategies.base import (
    CloudSetup,
    DeviceStep,
    FleetStrategy,
    Method,
    NodeSampler,
    PerDeviceHalf,
    TrainOutcome,
    messages_to,
)
from strategies.local_training import (
    LocalTrainingParams,
    head_training_flops,
    train_head,
    train_locally,
)


class FinetuneParams(LocalTrainingParams):
    """The device's training: ``local_epochs``, ``lr``, ``batch_size``, and which weights.

    ``train``: ``all`` (the whole network) or ``head`` (the editable head on the
    frozen backbone: far fewer weights to fit from a few dozen samples).
    """

    train: Literal["all", "head"] = "all"


class FinetuneStrategy(FleetStrategy):
    """A cloud that only schedules: it tells sampled devices to train, and learns nothing."""

    def __init__(self, sample_nodes: NodeSampler):
        self._sample_nodes = sample_nodes

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return messages_to(self._sample_nodes(server_round), RecordDict())

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return None, MetricRecord({"trained": len(list(replies))})


class FinetuneDevice(PerDeviceHalf):
    """Device half: SGD on the weights it already runs; the reply carries nothing."""

    def train_one(self, step: DeviceStep) -> TrainOutcome:
        assert isinstance(step.params, LocalTrainingParams)
        assert isinstance(step.params, FinetuneParams)
        model = step.kit.load(step.view.held)
        x, y = step.labeled
        epochs = step.params.local_epochs
        if step.params.train == "head":
            held, _, passes = train_head(model, x, y, step.params, step.seed)
            flops = head_training_flops(step.kit.forward_flops_per_sample, held, len(y), epochs)
        else:
            _, passes = train_locally(model, x, y, step.params, step.seed)
            held = {k: v.detach().clone() for k, v in model.state_dict().items()}
            flops = training_flops(step.kit.forward_flops_per_sample, len(y), epochs)
        return TrainOutcome(RecordDict(), held if len(y) else None, flops, passes)


def _cloud(setup: CloudSetup) -> FinetuneStrategy:
    return FinetuneStrategy(setup.sample_nodes)


METHOD = Method(
    name="finetune",
    colour="#2ca02c",
    summary="each device fine-tunes its own copy on its labeled samples; no upload",
    params=FinetuneParams,
    cloud=_cloud,
    device=FinetuneDevice(),
)
