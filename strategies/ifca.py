"""``ifca``: clustered federated learning (IFCA, Ghosh et al. 2020).

Cloud: keeps ``clusters`` models. Each round it sends every sampled device all
of them; each device scores them on its labeled samples, picks the one with
the lowest loss, trains it and sends it back with the cluster index; the
cloud averages the updates per cluster (FedAvg within each cluster). The
device runs the cluster model it picked. Cluster models start from the shared
pretrained model plus a small seeded perturbation of the head, so that they
can separate.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords
from pydantic import Field

from basemodel.architecture import is_head_key
from basemodel.flops import training_flops
from strategies import wire
from strategies.base import (
    CloudSetup,
    DeviceStep,
    FleetStrategy,
    Method,
    NodeSampler,
    PerDeviceHalf,
    TrainOutcome,
    Weights,
    messages_to,
)
from strategies.local_training import LocalTrainingParams, train_locally, update_reply
from strategies.records import weights_of

CLUSTER = "cluster"


class IFCAParams(LocalTrainingParams):
    clusters: int = Field(default=3, ge=1, le=16)
    init_noise: float = Field(default=0.02, ge=0)


def cluster_key(cluster: int, name: str) -> str:
    return f"c{cluster}/{name}"


class IFCAStrategy(FleetStrategy):
    """The cloud half: K models, all sent; updates averaged within their cluster."""

    def __init__(
        self, sample_nodes: NodeSampler, initial: ArrayRecord, params: IFCAParams, seed: int
    ):
        self._sample_nodes = sample_nodes
        base = initial.to_torch_state_dict()
        generator = torch.Generator().manual_seed(seed)
        self.models: list[Weights] = []
        for _ in range(params.clusters):
            model = {k: v.clone() for k, v in base.items()}
            for name, value in model.items():
                if is_head_key(name) and value.is_floating_point():
                    value += params.init_noise * torch.randn(value.shape, generator=generator)
            self.models.append(model)
        self._shapes = {k: tuple(v.shape) for k, v in base.items()}

    def checkpoint_state(self) -> dict:
        """The K cluster models (between rounds)."""
        return {"models": self.models}

    def restore_state(self, state: dict) -> None:
        self.models = [{k: v.clone() for k, v in model.items()} for model in state["models"]]

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        bundle = ArrayRecord(
            {
                cluster_key(k, name): value
                for k, model in enumerate(self.models)
                for name, value in model.items()
            }
        )
        return messages_to(self._sample_nodes(server_round), RecordDict({wire.ARRAYS: bundle}))

    def validate_reply(self, reply: Message) -> str | None:
        arrays, metrics = reply.content.get(wire.ARRAYS), reply.content.get(wire.METRICS)
        if not isinstance(arrays, ArrayRecord) or not isinstance(metrics, MetricRecord):
            return "malformed update: missing model or metrics record"
        if {k: tuple(arrays[k].shape) for k in arrays} != self._shapes:
            return "malformed update: arrays do not match the cluster models"
        if not -1 <= int(metrics.get(CLUSTER, -2)) < len(self.models):
            return "malformed update: no valid cluster index"
        return None

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        members: dict[int, list[RecordDict]] = {}
        for reply in replies:
            metrics = reply.content[wire.METRICS]
            if int(metrics[wire.NUM_EXAMPLES]) > 0 and int(metrics[CLUSTER]) >= 0:
                members.setdefault(int(metrics[CLUSTER]), []).append(reply.content)
        for cluster, contents in members.items():
            averaged = aggregate_arrayrecords(contents, wire.NUM_EXAMPLES)
            self.models[cluster] = weights_of(averaged)
            parameters = sum(v.numel() for v in self.models[cluster].values())
            self.spend(2.0 * parameters * len(contents))  # a weighted sum per cluster
        sizes = {f"members-{k}": len(members.get(k, [])) for k in range(len(self.models))}
        return None, MetricRecord(sizes)


class IFCADevice(PerDeviceHalf):
    """Score every cluster model on the labeled samples, train the best, report which."""

    def train_one(self, step: DeviceStep) -> TrainOutcome:
        assert isinstance(step.params, IFCAParams)
        bundle = step.arrays.torch(step.content[wire.ARRAYS])
        models: dict[int, Weights] = {}
        for key, value in bundle.items():
            cluster, name = key.split("/", 1)
            models.setdefault(int(cluster.removeprefix("c")), {})[name] = value
        x, y = step.labeled
        best, losses = -1, []
        if len(y):
            with torch.no_grad():
                for k in sorted(models):
                    scored = step.kit.load(models[k])
                    losses.append(float(torch.nn.functional.cross_entropy(scored(x), y)))
            best = min(range(len(losses)), key=lambda k: (losses[k], k))
        chosen = models[max(best, 0)]
        model = step.kit.load(chosen)
        loss, passes = train_locally(model, x, y, step.params, step.seed)
        reply = update_reply(model.state_dict(), len(y), loss, **{CLUSTER: best})
        scoring = step.kit.forward_flops_per_sample * len(y) * len(models)
        flops = scoring + training_flops(
            step.kit.forward_flops_per_sample, len(y), step.params.local_epochs
        )
        return TrainOutcome(reply, chosen if best >= 0 else None, flops, passes)


def _cloud(setup: CloudSetup) -> IFCAStrategy:
    assert isinstance(setup.params, IFCAParams)
    return IFCAStrategy(setup.sample_nodes, setup.initial_arrays, setup.params, setup.seed)


METHOD = Method(
    name="ifca",
    colour="#98df8a",
    summary="clustered FL: devices pick the lowest-loss of K cloud models and train it",
    params=IFCAParams,
    cloud=_cloud,
    device=IFCADevice(),
)
