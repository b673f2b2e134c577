"""What a method is: a cloud half, a device half and a validated parameter model.

The cloud half is a ``flwr.serverapp.strategy.Strategy`` built by ``Method.cloud``
from a ``CloudSetup``. The device half is called by the simulator's device
ClientApp with the message content, the device's data window and the weights
it currently holds; it never touches the network or the clock itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from pydantic import BaseModel, ConfigDict
from torch import nn

Weights = dict[str, torch.Tensor]


@contextmanager
def fixed_threads(count: int = 1) -> Iterator[None]:
    """Run torch work on a fixed number of threads, then restore the previous setting.

    Float reductions depend on how work is split across threads, and the
    thread count is per OS thread (a Flower ServerApp runs in its own), so
    cloud pretraining, cloud batches and device steps all run with a fixed
    count: the same scenario and seed then give the same numbers on any engine
    and machine.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


BACKWARD_FACTOR = 2.0  # a backward pass costs about twice the forward


def training_flops(forward_per_sample: float, samples: int, epochs: int) -> float:
    """FLOPs of ``epochs`` passes of forward + backward over ``samples`` samples."""
    return forward_per_sample * (1.0 + BACKWARD_FACTOR) * samples * epochs


NodeSampler = Callable[[int], list[int]]


class MethodParams(BaseModel):
    """Base for each method's parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class CloudResources:
    """What the cloud holds before deployment: the starting model, its data, known contexts.

    ``contexts`` are image transforms (the clean source first) named by
    ``context_names``; ``pretrained_key`` identifies the starting model (for caches).
    """

    model: nn.Module
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    contexts: list[Callable[[torch.Tensor], torch.Tensor]]
    context_names: list[str]
    dirichlet_alpha: float
    window: int
    pretrained_key: str


@dataclass(frozen=True)
class CloudSetup:
    """What the simulator hands a method's cloud half when a run starts."""

    params: MethodParams
    initial_arrays: ArrayRecord
    sample_nodes: NodeSampler
    seed: int
    resources: CloudResources | None = None
    device_of: Callable[[int], int] | None = None  # node id -> fleet device index
    fleet_size: int = 0


@dataclass
class DeviceKit:
    """The device's fixed resources: a scratch model, the factory weights, their cost."""

    model: nn.Module
    pretrained: Weights
    forward_flops_per_sample: float
    backbone_flops_per_sample: float
    seed: int


@dataclass(frozen=True)
class TrainOutcome:
    """What a device step produced.

    ``held`` is the weights the device will run from now on if the round
    completes in time (``None``: keep what it holds); they override the factory
    model key by key, so a method that edits only the head stores only the head.
    ``records`` are method-specific records to keep in the device's state (on
    time only). ``flops`` and ``backward_passes`` are what the step cost.
    """

    reply: RecordDict
    held: Weights | None
    flops: float
    backward_passes: int
    records: dict[str, Any] | None = None


@dataclass(frozen=True)
class DeviceView:
    """What the device holds when a message arrives.

    ``held``: weights it runs beyond the factory model (``None``: factory only);
    ``records``: the method's own records kept from earlier rounds.
    """

    held: Weights | None
    records: RecordDict


@dataclass(frozen=True)
class DeviceStep:
    """Everything a device half is called with in one round.

    ``content`` is the cloud's message; ``inputs`` the current unlabeled
    window; ``labeled`` the samples whose labels have arrived (empty in a
    second phase); ``view`` what the device holds; ``kit`` its fixed resources.
    """

    content: RecordDict
    inputs: torch.Tensor
    labeled: tuple[torch.Tensor, torch.Tensor]
    view: DeviceView
    kit: DeviceKit
    params: MethodParams


class CheckpointableCloud(Protocol):
    """A cloud half with state beyond the global arrays the round loop carries.

    ``checkpoint_state`` returns it between rounds as tensors, numbers,
    strings and lists/dicts of them (saved with ``torch.save`` and loaded with
    ``weights_only``); ``restore_state`` puts it back into a freshly built
    strategy, so that the resumed run continues exactly. Stateless cloud
    halves (FedAvg's state is its global arrays) define neither.
    """

    def checkpoint_state(self) -> dict[str, Any]: ...

    def restore_state(self, state: dict[str, Any]) -> None: ...


class DeviceHalf(Protocol):
    """The device side of a method.

    ``train`` answers the round's first message. A two-phase method (the cloud
    answers the device's reply within the same round, as Persona does) also
    has ``apply(step)``, called with the cloud's second message.
    """

    def train(self, step: DeviceStep) -> TrainOutcome: ...


class NoFederatedEvaluation:
    """For cloud halves whose devices are scored by the simulator's evaluation ticks.

    Flower's ``Strategy`` asks for federated evaluation hooks; the simulator
    measures every method the same way instead (test-then-adapt on a fixed
    time grid), so these send nothing and aggregate nothing.
    """

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return []

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return None


@dataclass(frozen=True)
class Method:
    """A registered method: its name, one-line summary, parameters and two halves."""

    name: str
    summary: str
    params: type[MethodParams]
    cloud: Callable[[CloudSetup], Strategy]
    device: DeviceHalf
