"""``fedavg``: Flower's FedAvg on the fleet.

Cloud: Flower's own ``FedAvg``, with two changes the simulator needs: nodes are
sampled among the devices online this round with the run's seeded sampler
(Flower's default uses the global ``random`` module over all nodes), and
replies are aggregated in device order so the float sums are reproducible.
Device: download the global model, train ``local_epochs`` on the labeled recent
samples, upload the full weights; the device runs the downloaded global model.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from pydantic import Field

from strategies import wire
from strategies.base import (
    CloudSetup,
    DeviceKit,
    DeviceView,
    Method,
    MethodParams,
    NodeSampler,
    TrainOutcome,
    training_flops,
)


class FedAvgParams(MethodParams):
    local_epochs: int = Field(default=1, ge=1, le=100)
    lr: float = Field(default=0.05, gt=0)
    batch_size: int = Field(default=16, ge=1)


class FleetFedAvg(FedAvg):
    """Flower's FedAvg, sampling online devices with the run's seeded sampler."""

    def __init__(self, sample_nodes: NodeSampler):
        super().__init__(
            fraction_evaluate=0.0,
            min_available_nodes=1,
            min_train_nodes=1,
            arrayrecord_key=wire.ARRAYS,
            weighted_by_key=wire.NUM_EXAMPLES,
        )
        self._sample_nodes = sample_nodes
        self._expected: dict[str, tuple[int, ...]] = {}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._expected = {key: tuple(arrays[key].shape) for key in arrays}
        content = RecordDict({wire.ARRAYS: arrays, self.configrecord_key: config})
        return [
            Message(content=content, message_type=MessageType.TRAIN, dst_node_id=node)
            for node in self._sample_nodes(server_round)
        ]

    def validate_reply(self, reply: Message) -> str | None:
        """Why an update cannot be averaged (missing records, other shapes), or ``None``."""
        arrays, metrics = reply.content.get(wire.ARRAYS), reply.content.get(wire.METRICS)
        if not isinstance(arrays, ArrayRecord) or not isinstance(metrics, MetricRecord):
            return "malformed update: missing model or metrics record"
        if {key: tuple(arrays[key].shape) for key in arrays} != self._expected:
            return "malformed update: arrays do not match the global model"
        if wire.NUM_EXAMPLES not in metrics:
            return f"malformed update: no {wire.NUM_EXAMPLES!r}"
        return None

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        useful = [
            r
            for r in replies
            if r.has_error() or int(r.content[wire.METRICS][wire.NUM_EXAMPLES]) > 0
        ]
        return super().aggregate_train(server_round, useful)


def _train_locally(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    params: FedAvgParams,
    seed: int,
) -> tuple[float, int]:
    """Minibatch SGD over the labeled samples; returns mean loss and backward passes."""
    optimizer = torch.optim.SGD(model.parameters(), lr=params.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    model.train()
    losses, passes = [], 0
    for _ in range(params.local_epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(order), params.batch_size):
            batch = order[start : start + params.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            passes += 1
    model.eval()
    return (sum(losses) / len(losses) if losses else 0.0), passes


class FedAvgDevice:
    """Device half: local SGD from the downloaded global model."""

    def train(
        self,
        content: RecordDict,
        inputs: torch.Tensor,
        labeled: tuple[torch.Tensor, torch.Tensor],
        view: DeviceView,
        kit: DeviceKit,
        params: MethodParams,
    ) -> TrainOutcome:
        assert isinstance(params, FedAvgParams)
        global_weights = content[wire.ARRAYS].to_torch_state_dict()
        kit.model.load_state_dict(global_weights)
        x, y = labeled
        loss, passes = _train_locally(kit.model, x, y, params, kit.seed)
        reply = RecordDict(
            {
                wire.ARRAYS: ArrayRecord(kit.model.state_dict()),
                wire.METRICS: MetricRecord({wire.NUM_EXAMPLES: len(y), wire.TRAIN_LOSS: loss}),
            }
        )
        flops = training_flops(kit.forward_flops_per_sample, len(y), params.local_epochs)
        return TrainOutcome(reply, global_weights, flops, passes)


def _cloud(setup: CloudSetup) -> FleetFedAvg:
    return FleetFedAvg(setup.sample_nodes)


METHOD = Method(
    name="fedavg",
    summary="Flower FedAvg: local SGD on labeled samples, full-weight upload",
    params=FedAvgParams,
    cloud=_cloud,
    device=FedAvgDevice(),
)
