"""The method contract: what the simulator calls, when, and what it may assume.

A method is a ``Method``: a name, a parameter model, a cloud half and a device
half. The simulator calls only what is declared here; every optional hook has
a documented default, so a method overrides what it needs and nothing is
discovered by probing.

**Cloud half** (``FleetStrategy``, a Flower ``Strategy``). Each round the
simulator's loop calls, in order:

1. ``configure_train(round, arrays, config, grid)``: the messages of the round
   (usually one per device drawn with ``CloudSetup.sample_nodes``);
2. ``validate_reply(reply)`` for every reply that arrived on time, before the
   method sees it (default: accept); a reason string makes it a failed
   device-round;
3. ``aggregate_train(round, kept_replies)``: new global arrays (or ``None``:
   keep them) and metrics for the round's row;
4. for a ``TwoPhaseStrategy`` only, a second exchange inside the same round:
   ``configure_apply(round, grid)``, then ``validate_reply`` and
   ``aggregate_apply(round, kept_replies)``; the deadline covers both phases.

Between rounds it may call ``checkpoint_state()`` and, on a resumed run,
``restore_state(state)`` on a freshly built strategy (default: no state).
Flower's federated-evaluation hooks send nothing: the simulator scores every
method itself on a fixed time grid.

**Device half** (``DeviceHalf``). Called by the simulator's device runtime with
one ``DeviceStep`` per device that got a message, after the runtime loaded
the weights the device holds into ``step.kit.model``: ``train`` answers the
round's first message; a ``TwoPhaseDevice`` also answers the second with
``apply``; ``serving_weights`` picks what a device predicts with at
evaluation (default: the weights it holds). A device half never touches the
network or the clock: the runtime meters bytes, FLOPs and time, applies the
deadline and keeps the device's state.

A complete minimal method is in ``strategies/README.md``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from pydantic import BaseModel, ConfigDict
from torch import nn

from basemodel.resources import CloudResources

Weights = dict[str, torch.Tensor]
NodeSampler = Callable[[int], list[int]]
log = logging.getLogger("persona_fleet")


class MethodParams(BaseModel):
    """Base for each method's parameters: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class CloudSetup:
    """What the simulator hands a method's cloud factory when a run starts.

    ``sample_nodes(round)`` draws this round's devices (Flower node ids) among
    those reachable, with the run's seed; ``device_of`` maps a node id to its
    fleet index; ``resources`` is what the cloud holds (starting model, its
    held-out data, known contexts).
    """

    params: MethodParams
    initial_arrays: ArrayRecord
    sample_nodes: NodeSampler
    seed: int
    resources: CloudResources
    device_of: Callable[[int], int]
    fleet_size: int


class FleetStrategy(Strategy):
    """Base of every cloud half: a Flower ``Strategy`` with the simulator's hooks.

    Methods built on a Flower strategy list it after their own mixins and
    before this class (``class X(FleetSampling, FedAvg, FleetStrategy)``), so
    Flower's behaviour is kept and these defaults fill in the rest.
    """

    def validate_reply(self, reply: Message) -> str | None:
        """Why ``reply`` cannot be used (a malformed or foreign payload), or ``None``.

        Called for every on-time reply of either phase after the simulator's
        own checks (metering record present, every array finite). Default:
        accept everything.
        """
        return None

    def checkpoint_state(self) -> dict[str, Any]:
        """The cloud's state beyond the global arrays, between rounds.

        Tensors, numbers, strings and lists/dicts of them (saved with
        ``torch.save``, loaded with ``weights_only``). Default: none.
        """
        return {}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Put back a ``checkpoint_state()`` into a freshly built strategy (resume)."""
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state but was given {sorted(state)}")

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """No federated evaluation: the simulator scores devices on its own time grid."""
        return []

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Nothing to aggregate (see ``configure_evaluate``)."""
        return None

    def summary(self) -> None:
        """Log the method's settings (Flower's hook; default: the class name)."""
        log.debug("cloud half: %s", type(self).__name__)


class TwoPhaseStrategy(FleetStrategy):
    """A cloud half that answers its devices within the round (Persona).

    After ``aggregate_train`` the loop sends the messages of
    ``configure_apply`` and hands the on-time replies to ``aggregate_apply``.
    The devices' clocks run on from their first phase, so a slow answer can
    still miss the deadline.
    """

    @abstractmethod
    def configure_apply(self, server_round: int, grid: Grid) -> Iterable[Message]:
        """The second phase's messages (``message_type = wire.TRAIN_APPLY``)."""

    @abstractmethod
    def aggregate_apply(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Metrics of the second phase, merged into the round's ``train_metrics``."""


@dataclass
class DeviceKit:
    """A device's fixed resources: a scratch model, the factory weights, their cost.

    ``model`` is shared by the devices a process simulates: a device half may
    load any weights into it. ``seed`` is this device-round's own.
    """

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
    """Everything a device half is called with for one device in one round.

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


class DeviceHalf(ABC):
    """The device side of a method."""

    @abstractmethod
    def train(self, step: DeviceStep) -> TrainOutcome:
        """Answer the round's first message for one device."""

    def serving_weights(
        self, view: DeviceView, inputs: torch.Tensor, kit: DeviceKit, params: MethodParams
    ) -> Weights | None:
        """The weights to predict ``inputs`` with (``None``: the factory model).

        Called at every evaluation tick. May look at the unlabeled inputs it
        is about to predict, never at their labels. Default: what the device
        holds.
        """
        return view.held


class TwoPhaseDevice(DeviceHalf):
    """The device side of a ``TwoPhaseStrategy``: ``apply`` answers the second message."""

    @abstractmethod
    def apply(self, step: DeviceStep) -> TrainOutcome:
        """Answer the second message (``step.labeled`` and ``step.inputs`` are empty)."""


def messages_to(
    nodes: Iterable[int], content: RecordDict, message_type: str = MessageType.TRAIN
) -> list[Message]:
    """One message per node, all carrying ``content`` (each device is billed for its copy)."""
    return [Message(content, dst_node_id=node, message_type=message_type) for node in nodes]


CloudFactory = Callable[[CloudSetup], FleetStrategy]


@dataclass(frozen=True)
class Method:
    """A registered method: its name, one-line summary, parameters and two halves.

    ``two_phase`` follows the device half's class; ``build_cloud`` checks that
    the cloud half agrees, so a mismatch fails at the start of a run, not
    inside it.
    """

    name: str
    summary: str
    params: type[MethodParams]
    cloud: CloudFactory
    device: DeviceHalf

    @property
    def two_phase(self) -> bool:
        return isinstance(self.device, TwoPhaseDevice)

    def build_cloud(self, setup: CloudSetup) -> FleetStrategy:
        """The cloud half for a run, checked against the declared contract."""
        strategy = self.cloud(setup)
        if not isinstance(strategy, FleetStrategy):
            raise TypeError(f"{self.name}: the cloud half must be a FleetStrategy")
        if isinstance(strategy, TwoPhaseStrategy) != self.two_phase:
            raise TypeError(f"{self.name}: a two-phase cloud needs a TwoPhaseDevice and vice versa")
        return strategy
