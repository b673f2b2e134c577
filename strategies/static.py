"""``static``: the pretrained model, never updated. The reference every method must beat."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid

from strategies.base import (
    CloudSetup,
    DeviceHalf,
    DeviceStep,
    FleetStrategy,
    Method,
    MethodParams,
    TrainOutcome,
)


class StaticParams(MethodParams):
    """``static`` takes no parameters."""


class StaticStrategy(FleetStrategy):
    """A cloud that sends nothing: devices keep the factory model for the whole run."""

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return []

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return None, None


class StaticDevice(DeviceHalf):
    """Never asked to train; answers an empty reply if it is."""

    def train(self, cohort: Sequence[DeviceStep]) -> list[TrainOutcome]:
        return [TrainOutcome(RecordDict(), None, 0.0, 0) for _ in cohort]


def static_cloud(setup: CloudSetup) -> StaticStrategy:
    """The cloud of every method whose devices never hear from it."""
    return StaticStrategy()


METHOD = Method(
    name="static",
    role="reference",
    colour="#7f7f7f",
    summary="pretrained model, never updated",
    params=StaticParams,
    cloud=static_cloud,
    device=StaticDevice(),
)
