"""``fedavg``: Flower's FedAvg on the fleet.

Cloud: Flower's own ``FedAvg``, with two changes the simulator needs: nodes are
sampled among the devices online this round with the run's seeded sampler
(Flower's default uses the global ``random`` module over all nodes), and
replies are aggregated in device order so the float sums are reproducible.
Device: download the global model, train ``local_epochs`` on the labeled recent
samples, upload the full weights; the device runs the downloaded global model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

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
from strategies.cohort import train_cohort
from strategies.local_training import LocalTrainingParams, train_locally, update_reply


class FedAvgParams(LocalTrainingParams):
    """FedAvg's device training (``local_epochs``, ``lr``, ``batch_size``)."""


FLEET_FEDAVG_ARGS = {
    "fraction_evaluate": 0.0,
    "min_available_nodes": 1,
    "min_train_nodes": 1,
    "arrayrecord_key": wire.ARRAYS,
    "weighted_by_key": wire.NUM_EXAMPLES,
}


class FleetSampling:
    """For Flower's FedAvg family: seeded sampling, update checks, device-ordered sums.

    Mixed in before a Flower strategy (``class X(FleetSampling, FedAvg,
    FleetStrategy)``); the strategy's own aggregation is kept.
    """

    configrecord_key: str

    def _use_sampler(self, sample_nodes: NodeSampler) -> None:
        self._sample_nodes = sample_nodes
        self._expected: dict[str, tuple[int, ...]] = {}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._expected = {key: tuple(arrays[key].shape) for key in arrays}
        content = RecordDict({wire.ARRAYS: arrays, self.configrecord_key: config})
        return messages_to(self._sample_nodes(server_round), content)

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
        parameters = sum(math.prod(shape) for shape in self._expected.values())
        self.spend(2.0 * parameters * len(useful))  # type: ignore[attr-defined]
        return super().aggregate_train(server_round, useful)  # type: ignore[misc]


class FleetFedAvg(FleetSampling, FedAvg, FleetStrategy):
    """Flower's FedAvg, sampling online devices with the run's seeded sampler."""

    def __init__(self, sample_nodes: NodeSampler):
        super().__init__(**FLEET_FEDAVG_ARGS)
        self._use_sampler(sample_nodes)


_UNBATCHED: list[str] = []  # why batched training fell back, said once per process


class FedAvgDevice(PerDeviceHalf):
    """Device half: local SGD from the downloaded global model."""

    def proximal(self, step: DeviceStep) -> tuple[float, Weights | None]:
        """No proximal term for FedAvg (FedProx's device half overrides this)."""
        return 0.0, None

    def train(self, cohort: Sequence[DeviceStep]) -> list[TrainOutcome]:
        """One device at a time, or the whole cohort at once where the engine batches
        devices on an accelerator (``engine.device``; ``strategies.cohort``)."""
        device = cohort[0].kit.cohort_device if cohort else None
        if device is None:
            return [self.train_one(step) for step in cohort]
        params = cohort[0].params
        assert isinstance(params, LocalTrainingParams)
        starts = [step.arrays.torch(step.content[wire.ARRAYS]) for step in cohort]
        mus = {self.proximal(step)[0] for step in cohort}
        assert len(mus) == 1, "one proximal weight per round"
        model = cohort[0].kit.cohort_model
        assert model is not None
        try:
            trained = train_cohort(
                model,
                [{**step.kit.pretrained, **s} for step, s in zip(cohort, starts, strict=True)],
                [step.labeled for step in cohort],
                params,
                [step.seed for step in cohort],
                device,
                mus.pop(),
            )
        except (RuntimeError, NotImplementedError) as err:  # a layer vmap cannot batch here
            if not _UNBATCHED:
                logging.getLogger("persona_fleet").info(
                    "device training runs one device at a time: %s", str(err).splitlines()[0]
                )
                _UNBATCHED.append(str(err))
            return [self.train_one(step) for step in cohort]
        return [
            self._outcome(step, start, weights, loss, passes)
            for step, start, (weights, loss, passes) in zip(cohort, starts, trained, strict=True)
        ]

    def train_one(self, step: DeviceStep) -> TrainOutcome:
        assert isinstance(step.params, LocalTrainingParams)
        global_weights = step.arrays.torch(step.content[wire.ARRAYS])
        model = step.kit.load(global_weights)
        x, y = step.labeled
        loss, passes = train_locally(model, x, y, step.params, step.seed, *self.proximal(step))
        return self._outcome(step, global_weights, model.state_dict(), loss, passes)

    def _outcome(
        self, step: DeviceStep, global_weights: Weights, trained: Weights, loss: float, passes: int
    ) -> TrainOutcome:
        assert isinstance(step.params, LocalTrainingParams)
        examples = len(step.labeled[1])
        reply = update_reply(trained, examples, loss)
        flops = training_flops(
            step.kit.forward_flops_per_sample, examples, step.params.local_epochs
        )
        return TrainOutcome(reply, self.keeps(global_weights, trained), flops, passes)

    def keeps(self, global_weights: Weights, trained: Weights) -> Weights:
        """What the device runs afterwards: FedAvg's device runs the global model.

        The tensors are the round's decoded global model, shared by every device
        that got it (no copy per device).
        """
        return global_weights


def _cloud(setup: CloudSetup) -> FleetFedAvg:
    return FleetFedAvg(setup.sample_nodes)


METHOD = Method(
    name="fedavg",
    colour="#1f77b4",
    summary="Flower FedAvg: local SGD on labeled samples, full-weight upload",
    params=FedAvgParams,
    cloud=_cloud,
    device=FedAvgDevice(),
)
