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

**Device half** (``DeviceHalf``). Called by the simulator's device runtime
with a cohort: one ``DeviceStep`` per device that got the round's message.
``train`` answers the first message; a ``TwoPhaseDevice`` also answers the
second with ``apply``; at evaluation ``predict`` gives each device's logits
(default: a forward pass with ``serving_weights``, the weights it holds,
batched across devices serving the same weights). A cohort may be computed
together (batched) or one device at a time (``PerDeviceHalf``); a cohort of
one is the per-message path. A device half never touches the network or the
clock: the runtime meters bytes, FLOPs and time, applies the deadline and
keeps the device's state.

A complete minimal method is in ``strategies/README.md``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from pydantic import ConfigDict

from basemodel.architecture import Weights
from basemodel.cloud_device import HOST
from basemodel.resources import CloudResources
from basemodel.values import NoBooleanNumbers
from strategies.cohort_serving import predict_cohort
from strategies.device_kit import ArrayCache, DeviceKit

NodeSampler = Callable[[int], list[int]]


class SettingsError(ValueError):
    """A method's settings cannot run on this scenario's data.

    Raised while a method's cloud half is set up (after pretraining showed what
    the settings need); the message names the setting and what to change. The
    run stops with that one line, keeping the method-seeds already finished.
    """


log = logging.getLogger("persona_fleet")


class MethodParams(NoBooleanNumbers):
    """Base for each method's parameters: unknown keys are errors, values are frozen,
    and a boolean is never a number (``lr: true`` is refused, not run as 1.0)."""

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
    # Where the cloud half computes: the scenario's ``cloud.device`` if the method
    # declares that kind (``Method.cloud_devices``), else the CPU.
    cloud_device: torch.device = HOST


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

    def run_facts(self) -> dict[str, Any]:
        """What the method reports about itself for the run folder (JSON-able; default none).

        Written into the run's end row, read by the reports: for instance
        Persona's adapter scores on held-out episodes, so that an adapter whose
        edits do not help is visible in the report, not only in a log.
        """
        return {}

    _cloud_flops: float = 0.0

    def spend(self, flops: float) -> None:
        """Count FLOPs of the cloud's own work (aggregation, an adapter pass, training)."""
        self._cloud_flops = self._cloud_flops + float(flops)

    def take_cloud_flops(self) -> float:
        """The FLOPs spent since the last call (the loop calls it after each phase)."""
        spent, self._cloud_flops = self._cloud_flops, 0.0
        return spent


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

    ``content`` is the cloud's message (decode its arrays with
    ``arrays.torch``); ``inputs`` the current unlabeled window; ``labeled`` the
    samples whose labels have arrived (empty in a second phase); ``view`` what
    the device holds; ``kit`` the shared scratch model; ``seed`` this
    device-round's own seed.
    """

    content: RecordDict
    inputs: torch.Tensor
    labeled: tuple[torch.Tensor, torch.Tensor]
    view: DeviceView
    kit: DeviceKit
    params: MethodParams
    seed: int
    arrays: ArrayCache


@dataclass(frozen=True)
class ServeStep:
    """One device at an evaluation tick: what it holds and the inputs it must predict."""

    view: DeviceView
    inputs: torch.Tensor
    kit: DeviceKit
    params: MethodParams


class DeviceHalf(ABC):
    """The device side of a method, called for a cohort: the devices that got a message.

    Devices of a cohort are independent: a device's outcome must not depend on
    which others share its cohort (the engines split a round's devices
    differently), up to float summation order when work is batched.
    """

    @abstractmethod
    def train(self, cohort: Sequence[DeviceStep]) -> list[TrainOutcome]:
        """Answer the round's first message for every device of ``cohort``, in order."""

    def requests_service(self, cohort: Sequence[ServeStep]) -> list[bool]:
        """Which devices of ``cohort`` ask the cloud to serve them this round (default: none).

        Asked at each round's start, for devices that hold state, of methods
        that declare ``Method.requests_service``, with each device's current
        unlabeled window. A device that asks sends a small request (billed);
        the round's sampler serves askers first, up to
        ``rounds.request_share`` of its slots.
        """
        return [False] * len(cohort)

    def serving_weights(self, step: ServeStep) -> Weights | None:
        """The weights a device predicts with (``None``: the factory model).

        May look at the unlabeled inputs it is about to predict, never at their
        labels. Default: what the device holds.
        """
        return step.view.held

    def predict(self, cohort: Sequence[ServeStep]) -> list[torch.Tensor]:
        """Logits for each device's inputs (evaluation; under ``torch.inference_mode``).

        Default: each device runs ``serving_weights``; the weights are loaded
        once for all devices serving the same ones (the factory model, one
        global model), and each device's inputs run as their own batch (on a
        CPU, batches of one device's size are as fast per sample as larger
        ones, and a device's logits then never depend on its cohort).
        """
        if cohort and cohort[0].kit.cohort_device is not None:  # one batch on an accelerator
            kit = cohort[0].kit
            held = [self.serving_weights(step) for step in cohort]  # alive: ids stay unique
            full: dict[int, Weights] = {}  # one whole-model dict per distinct served model
            for weights in held:
                full.setdefault(id(weights), {**kit.pretrained, **(weights or {})})
            served = [full[id(weights)] for weights in held]
            inputs = [step.inputs for step in cohort]
            assert kit.cohort_model is not None
            return predict_cohort(kit.cohort_model, served, inputs, kit.cohort_device)
        groups: dict[int, tuple[Weights | None, list[int]]] = {}
        for i, step in enumerate(cohort):
            weights = self.serving_weights(step)
            groups.setdefault(id(weights), (weights, []))[1].append(i)
        logits: list[torch.Tensor] = [torch.empty(0)] * len(cohort)
        for weights, members in groups.values():
            model = cohort[members[0]].kit.load(weights)
            for i in members:
                logits[i] = model(cohort[i].inputs)
        return logits


class PerDeviceHalf(DeviceHalf):
    """A device half written one device at a time: the cohort is a loop over ``train_one``."""

    def train(self, cohort: Sequence[DeviceStep]) -> list[TrainOutcome]:
        return [self.train_one(step) for step in cohort]

    @abstractmethod
    def train_one(self, step: DeviceStep) -> TrainOutcome:
        """One device's answer to the round's first message."""


class TwoPhaseDevice(DeviceHalf):
    """The device side of a ``TwoPhaseStrategy``: ``apply`` answers the second message."""

    @abstractmethod
    def apply(self, cohort: Sequence[DeviceStep]) -> list[TrainOutcome]:
        """Answer the second message (``step.labeled`` and ``step.inputs`` are empty)."""


def messages_to(
    nodes: Iterable[int], content: RecordDict, message_type: str = MessageType.TRAIN
) -> list[Message]:
    """One message per node, all carrying ``content`` (each device is billed for its copy)."""
    return [Message(content, dst_node_id=node, message_type=message_type) for node in nodes]


CloudFactory = Callable[[CloudSetup], FleetStrategy]


MethodRole = Literal["method", "reference", "subject"]


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
    # Its devices may ask for service between rounds (``DeviceHalf.requests_service``):
    # the engine then polls devices that hold state at each round's start.
    requests_service: bool = False
    # The tasks it can run on (``simulator.catalog.datasets``); the scenario loader refuses
    # the others, with ``task_note`` as the reason.
    tasks: tuple[str, ...] = ("classification", "recommendation")
    task_note: str = ""
    # The kinds of torch device its cloud half can compute on (``cloud.device``); a
    # cloud that only averages arrays gains nothing from a GPU and stays on the CPU.
    cloud_devices: tuple[str, ...] = ("cpu",)
    # Parameters the method sets itself (what an ablation removes from its parent):
    # another value given for one is refused, never silently overwritten.
    fixed_params: Mapping[str, Any] = field(default_factory=dict)
    # Its part in the comparisons (``simulator.run.paired``) and the reports, declared
    # here rather than read from its name: a ``reference`` is what every method is
    # compared with (``static``); the ``subject`` is the method the project studies
    # (its traffic share and sweep margin are reported); ``variant_of`` names the method
    # it ablates, which becomes a reference when the two run side by side.
    role: MethodRole = "method"
    variant_of: str | None = None
    # Its colour in every figure (None: one drawn from its name).
    colour: str | None = None

    def declared_roles(self) -> dict[str, str | None]:
        """Role, parent and colour as plain values (a run folder records them)."""
        return {"role": self.role, "variant_of": self.variant_of, "colour": self.colour}

    @property
    def two_phase(self) -> bool:
        return isinstance(self.device, TwoPhaseDevice)

    def cloud_device_for(self, asked: torch.device) -> torch.device:
        """The device its cloud half runs on when the scenario asks for ``asked``."""
        return asked if asked.type in self.cloud_devices else HOST

    def build_cloud(self, setup: CloudSetup) -> FleetStrategy:
        """The cloud half for a run, checked against the declared contract."""
        strategy = self.cloud(setup)
        if not isinstance(strategy, FleetStrategy):
            raise TypeError(f"{self.name}: the cloud half must be a FleetStrategy")
        if isinstance(strategy, TwoPhaseStrategy) != self.two_phase:
            raise TypeError(f"{self.name}: a two-phase cloud needs a TwoPhaseDevice and vice versa")
        return strategy
