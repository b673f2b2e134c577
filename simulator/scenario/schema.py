"""The scenario schema: one validated model for everything a run needs.

A scenario file (YAML) describes the fleet, its network, the data and how it
drifts, the round schedule, the methods to compare, the engine and the seeds.
Everything downstream reads this model, never raw YAML, so a typo is caught
here, once, with the key path that holds it. Sections live in their own
modules (``fleet``, ``drift``); allowed names come from the tables that
define them: shift kinds (``simulator.catalog.shifts``), datasets
(``simulator.catalog.datasets``), radios (``simulator.catalog.energy``) and
device presets (``presets``); methods are checked against their registry when
a document is loaded (``loading``).

Units are SI and in the field names: seconds (``_s``), bits per second
(``_kbps`` = 1,000 bit/s), FLOP/s (``_flops``), milliseconds (``_ms``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from basemodel.cloud_device import DEVICE_PATTERN
from simulator.catalog.datasets import DATASET_NAMES, DATASETS, RATING_FORMATS, REPLAY_SPAN
from simulator.catalog.shifts import SHIFT_KINDS, Task
from simulator.scenario.drift import (
    AppliesTo,
    CovariateKind,
    KnownContext,
    Schedule,
    Shift,
    ShiftKindName,
)
from simulator.scenario.fleet import DeviceClass, Faults, Fleet, LogNormal, NetworkTrace
from simulator.scenario.known_share import deployed_contexts, family_at_share
from simulator.scenario.types import Fraction, PositiveFloat, Strict

DatasetName = Literal[DATASET_NAMES]  # type: ignore[valid-type]
MAX_EVAL_TICKS = 100_000  # evaluation ticks over a horizon: more is a typo, not an experiment
MIN_SAMPLES_PER_CLASS = 10  # in each device pool (train and test), on average
EngineName = Literal["inline", "ray", "flower", "deployment"]

__all__ = [
    "AppliesTo",
    "CovariateKind",
    "DeviceClass",
    "Faults",
    "Fleet",
    "KnownContext",
    "LogNormal",
    "NetworkTrace",
    "Shift",
    "ShiftKindName",
    "Fraction",
    "PositiveFloat",
]


class Data(Strict):
    dataset: DatasetName = "mnist"
    dirichlet_alpha: PositiveFloat = 0.5
    cloud_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.3
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    window: Annotated[int, Field(ge=1, le=10_000)] = 32
    window_period_s: PositiveFloat = 60.0
    labeled_fraction: Fraction = 0.5
    label_delay_s: Annotated[float, Field(ge=0)] = 0.0
    eval_samples: Annotated[int, Field(ge=1, le=10_000)] = 32
    # A local copy of public data, for datasets read from files (``movielens-100k``, ...):
    # a folder holding the expected file, or the file; made absolute when read.
    path: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _some_label_per_window(self) -> Data:
        if self.labeled_fraction > 0 and math.floor(self.labeled_fraction * self.window) == 0:
            raise ValueError(  # floored to none: every label learner would silently idle
                f"labeled_fraction: {self.labeled_fraction:g} of a {self.window}-sample window "
                f"is no labeled sample; give at least {1 / self.window:.3g} (or 0 for no labels)"
            )
        return self

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        if path is None:
            return None
        try:
            return str(Path(path).expanduser().resolve())
        except (OSError, RuntimeError) as err:  # ~nosuchuser, a link loop
            raise ValueError(f"cannot resolve {path!r} ({err})") from None


class Rounds(Strict):
    """The round schedule in simulated time.

    A round starts every ``period_s`` (or as soon as the previous one ends, if
    it ran longer); the simulated horizon is ``count * period_s``.
    """

    count: Annotated[int, Field(ge=1, le=100_000)]
    period_s: PositiveFloat = 60.0
    deadline_s: PositiveFloat = 30.0
    participation: Annotated[float, Field(gt=0, le=1)] = 0.05
    overcommit: Annotated[float, Field(ge=1, le=3)] = 1.0
    eval_every_s: PositiveFloat = 120.0
    eval_devices: Annotated[int, Field(ge=1)] = 200
    recovery_tolerance: Fraction = 0.02
    # Post-shift accuracy averages the ticks within this many seconds after each onset.
    post_shift_window_s: PositiveFloat = 900.0
    # The largest share of a round's slots given first to devices that asked for
    # service (methods whose devices ask, e.g. Persona after an edit expired); 0: none.
    # Off by default: on the flagship's tuning seed 100, a share of 0.5 gave Persona
    # acc_post_shift 0.6501 against 0.6556 without, and 138 J per device against 99
    # (more devices ask than there are slots, and each request pays a radio tail).
    request_share: Fraction = 0.0

    @property
    def horizon_s(self) -> float:
        return self.count * self.period_s


class MethodSpec(Strict):
    """One method to run; ``params`` are validated by the method's own parameter model."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


# The regimes of the starting model (``Pretrain.starting_model``).
StartingModel = Literal["cloud-best", "base-only"]


class Pretrain(Strict):
    """What the cloud holds and trains before deployment (backprop in the cloud only).

    The cloud's share of the dataset (``data.cloud_fraction``) is split in two.
    The **base** share trains the shared starting model every method begins
    from. The **family** share (``family_fraction`` of the cloud's data, held
    out from the starting model) is the labeled data the cloud has for the
    shift family it knows, rendered clean and under each context of
    ``family``: methods with a cloud-side learner use it (Persona's adapter
    episodes, ``cloud-retrain``).

    ``starting_model`` names the regime. ``cloud-best`` (the default) is the
    best model the cloud can make: the base share clean, under the contexts
    of ``base`` and under every family context, so ``static`` is what the
    cloud would ship. ``base-only`` trains on the base share clean and under
    ``base`` alone: a model shipped before the cloud had the family's data,
    the regime in which every family context is new to the starting model.
    ``seed`` fixes the pretraining seed across a run's simulation seeds
    (default: each simulation seed pretrains its own). ``known_share`` (unset:
    the family as written) rewrites the family so the cloud knows that share of
    the contexts devices meet (``simulator.scenario.known_share``): a sweep
    axis for how much of the fleet's world the cloud prepared for.
    """

    epochs: Annotated[int, Field(ge=0, le=1000)] = 8
    batch_size: Annotated[int, Field(ge=1)] = 64
    lr: PositiveFloat = 1e-3
    base: list[KnownContext] = Field(default_factory=list)
    family: list[KnownContext] = Field(default_factory=list)
    family_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.4
    starting_model: StartingModel = "cloud-best"
    seed: Annotated[int, Field(ge=0, le=2**62)] | None = None
    known_share: Fraction | None = None

    def starting_contexts(self) -> list[KnownContext]:
        """The contexts the starting model trains under (besides clean), each once."""
        contexts = list(self.base)
        if self.starting_model == "cloud-best":
            contexts += self.family
        unique: dict[tuple[str, float], KnownContext] = {}
        for context in contexts:
            unique.setdefault((context.kind, float(context.severity)), context)
        return list(unique.values())

    def known_contexts(self) -> list[KnownContext]:
        """Every context the cloud holds labeled data under (base and family)."""
        return [*self.base, *self.family]

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if "contexts" in data:
                raise ValueError(
                    "pretrain.contexts was split: pretrain.base (what the starting model "
                    "trains on) and pretrain.family (the shift family the cloud has data for)"
                )
            if "adapter_fraction" in data:
                raise ValueError("pretrain.adapter_fraction is now pretrain.family_fraction")
        return data


class Model(Strict):
    """The device's model: how wide its backbone is and what its editable head holds.

    ``width`` multiplies the backbone's channel, feature and embedding widths
    (1: the shipped model; 0.25 a lightweight one, the paper's premise that a
    small on-device model cannot cover what it meets). ``head_hidden`` lists
    the editable head's hidden layer widths between the backbone's features and
    the classes (empty: one linear layer). FLOPs, bytes, energy and device state
    follow the model built from these, since all of them are measured on it.
    """

    width: Annotated[float, Field(ge=0.0625, le=8)] = 1.0
    head_hidden: Annotated[list[Annotated[int, Field(ge=1, le=4096)]], Field(max_length=4)] = Field(
        default_factory=lambda: [64]
    )


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def superlink_host(address: str) -> str:
    """The host of a ``host:port`` address (a bracketed IPv6 host keeps its brackets)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port (e.g. 127.0.0.1:9093)")
    return host


def _torch_device_name(device: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` by name only (whether it runs here: preflight)."""
    if not re.fullmatch(DEVICE_PATTERN, device):
        raise ValueError(f"unknown device {device!r}; valid: cpu, cuda, cuda:N (N a GPU's index)")
    return device


class Cloud(Strict):
    """The cloud's own compute: its simulated speed, and where its tensor work really runs.

    ``flops_per_s`` prices the cloud's work inside a round in simulated
    seconds. ``device`` is the machine's own ``cpu`` or a CUDA GPU (``cuda``,
    ``cuda:N``) for the methods whose cloud declares it (Persona's adapter
    pass and refinement, pFedHN's hypernetwork); a GPU changes the last bits
    of their numbers, so it is never chosen by itself (``basemodel.cloud_device``).
    Whether this machine can run it is asked before a run
    (``simulator.world.preflight``), not here: a scenario reads the same on any
    machine.
    """

    flops_per_s: PositiveFloat = 1e12
    device: str = "cpu"

    _device_name = field_validator("device")(classmethod(lambda cls, d: _torch_device_name(d)))


class Engine(Strict):
    """Where devices run: ``inline`` (this process, one batch per exchange), ``ray`` (Ray
    actors, each owning a shard of the fleet), ``flower`` (Flower's own simulation
    runtime, one message per device: the reference engine).

    ``ray_address`` joins a Ray cluster (``ray`` and ``flower``); ``num_cpus`` sizes
    a private local Ray; ``shards`` is the number of device shards on ``ray``
    (default: one per CPU); ``cpus_per_device`` is Flower's per-node reservation
    on ``flower``.

    ``deployment`` runs the cloud as a Flower ServerApp on a real SuperLink
    (``superlink``, host:port) and each device on a real SuperNode
    (``simulate supernode``); time is real there. Without
    ``superlink_certificates`` (the CA certificate of a TLS SuperLink) the
    link is insecure, which only a loopback address may be.
    """

    kind: EngineName = "ray"
    ray_address: str | None = None
    cpus_per_device: PositiveFloat = 1.0
    num_cpus: Annotated[int, Field(ge=1)] | None = None
    shards: Annotated[int, Field(ge=1, le=4096)] | None = None
    # Wall seconds the cloud waits for one exchange's replies before it treats
    # the engine as broken (a frozen worker) and restarts it.
    reply_timeout_s: PositiveFloat = 600.0
    # Where devices compute: ``cpu`` (one device at a time, the default) or a GPU
    # (``cuda``, ``cuda:N``), where each exchange's cohort runs as one batch
    # (``strategies.cohort``: local training of the FedAvg family, evaluation,
    # Persona's heads; per-device metering, deadlines and state are unchanged).
    # ``batch_devices`` forces the batched path on or off (unset: on for a GPU);
    # on the CPU it is how the batched path is tested against the per-device one.
    device: str = "cpu"
    batch_devices: bool | None = None
    superlink: str | None = None
    superlink_certificates: str | None = None

    _device_name = field_validator("device")(classmethod(lambda cls, d: _torch_device_name(d)))

    @field_validator("superlink")
    @classmethod
    def _host_port(cls, address: str | None) -> str | None:
        if address is not None:
            superlink_host(address)
        return address

    @model_validator(mode="after")
    def _secure_unless_loopback(self) -> Engine:
        if (
            self.superlink is not None
            and self.superlink_certificates is None
            and superlink_host(self.superlink) not in LOOPBACK_HOSTS
        ):
            raise ValueError(
                f"engine.superlink {self.superlink} is not a loopback address: give "
                "engine.superlink_certificates (the SuperLink's CA certificate, PEM) for TLS; "
                "insecure links are only for 127.0.0.1, ::1 and localhost"
            )
        return self

    @property
    def cohort_device(self) -> str | None:
        """Where a cohort runs as one batch, or None for one device at a time."""
        batched = self.device != "cpu" if self.batch_devices is None else self.batch_devices
        return self.device if batched else None


class Scenario(Strict):
    """A whole scenario file, validated."""

    # A folder name under the output folder: letters, digits, '_', '.', '-', not only dots.
    name: Annotated[
        str,
        Field(
            min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$"
        ),
    ]
    description: str = ""
    seed: Annotated[int, Field(ge=0, le=2**62)] = 0  # seeds (+ up to 100 more) feed 64-bit RNGs
    seeds: Annotated[int, Field(ge=1, le=100)] = 1
    fleet: Fleet
    data: Data = Data()
    shifts: list[Shift] = Field(default_factory=list)
    schedule: Schedule | None = None
    rounds: Rounds
    methods: Annotated[list[MethodSpec], Field(min_length=1)]
    pretrain: Pretrain = Pretrain()
    model: Model = Model()
    cloud: Cloud = Cloud()
    engine: Engine = Engine()
    output: str = "runs"

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        class_names = {c.name for c in self.fleet.classes}
        for i, shift in enumerate(self.shifts):
            group = shift.applies_to.group
            if group is not None and group not in class_names:
                raise ValueError(
                    f"shifts[{i}].applies_to.group: unknown group {group!r}; "
                    f"valid groups (device class names): {', '.join(sorted(class_names))}"
                )
        if self.schedule is not None and self.schedule.groups == "classes":
            for i, segment in enumerate(self.schedule.segments):
                if len(segment.groups) != len(self.fleet.classes):
                    raise ValueError(
                        f"schedule.segments[{i}].groups: {len(segment.groups)} contexts for "
                        f"{len(self.fleet.classes)} device classes"
                    )
        groups = None if self.schedule is None else self.schedule.groups
        if isinstance(groups, int) and groups > self.fleet.devices:
            raise ValueError(
                f"schedule.groups: {groups} groups for {self.fleet.devices} devices "
                "(fleet.devices): some groups would have no device and their contexts no one "
                "to meet"
            )
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names):
            raise ValueError(f"methods: each method may appear once; got {names}")
        self._check_ratings()
        self._check_task()
        self._check_grid()
        self._check_pools()
        self._apply_known_share()
        return self

    def _apply_known_share(self) -> None:
        """Fix the cloud's family at validation when ``pretrain.known_share`` is set."""
        share = self.pretrain.known_share
        if share is None:
            return
        deployed = deployed_contexts(self.schedule, self.shifts)
        if not deployed:
            raise ValueError(
                "pretrain.known_share: no device meets a single-shift covariate or interest "
                "context (schedule.contexts or shifts), so there is no share to know; "
                "remove the key or deploy such a context"
            )
        family = family_at_share(self.pretrain.family, deployed, share)
        # Sections are frozen; the effective family is settled here, once, before
        # anything reads it.
        object.__setattr__(self, "pretrain", self.pretrain.model_copy(update={"family": family}))

    def _check_grid(self) -> None:
        horizon = self.rounds.horizon_s
        if not math.isfinite(horizon):
            raise ValueError("rounds: count * period_s is not a finite number of seconds")
        if self.rounds.eval_every_s > horizon:
            raise ValueError(
                f"rounds.eval_every_s: {self.rounds.eval_every_s:g} s is longer than the horizon "
                f"(rounds.count * rounds.period_s = {horizon:g} s): only t=0 would be evaluated"
            )
        ticks = horizon / self.rounds.eval_every_s
        if ticks > MAX_EVAL_TICKS:
            raise ValueError(
                f"rounds.eval_every_s: {self.rounds.eval_every_s:g} s gives {ticks:.3g} evaluation "
                f"ticks over the horizon; at most {MAX_EVAL_TICKS:,}"
            )
        if self.rounds.eval_devices > self.fleet.devices:
            raise ValueError(
                f"rounds.eval_devices: {self.rounds.eval_devices} evaluated devices, but the fleet "
                f"has {self.fleet.devices} (fleet.devices)"
            )

    @property
    def task(self) -> Task:
        """The task the dataset poses (classification or recommendation)."""
        return DATASETS[self.data.dataset].task

    def _check_ratings(self) -> None:
        """A dataset read from a local copy needs its path; one that ships with the code
        takes none."""
        fmt = DATASETS[self.data.dataset].ratings
        if fmt is None:
            if self.data.path is not None:
                local = sorted(name for name, spec in DATASETS.items() if spec.ratings)
                raise ValueError(
                    f"data.path: {self.data.dataset} ships with the code and reads no path; "
                    f"datasets read from a local copy: {', '.join(local)}"
                )
            return
        if self.data.path is None:  # the file itself is read before a run (world.preflight)
            raise ValueError(
                f"data.path: {self.data.dataset} is read from a local copy you give: a folder "
                f"holding {RATING_FORMATS[fmt][0]} (or the file itself); the "
                "simulator never downloads"
            )

    def _check_task(self) -> None:
        """Every shift kind must move the kind of data the dataset has."""
        used = [(f"shifts[{i}].kind", s.kind) for i, s in enumerate(self.shifts)]
        for part in ("base", "family"):
            contexts = getattr(self.pretrain, part)
            used += [(f"pretrain.{part}[{i}].kind", c.kind) for i, c in enumerate(contexts)]
        if self.schedule is not None:
            for name, context in self.schedule.contexts.items():
                used += [
                    (f"schedule.contexts.{name}[{i}].kind", shift.kind)
                    for i, shift in enumerate(context)
                ]
        if used and DATASETS[self.data.dataset].ratings is not None:
            raise ValueError(
                f"{used[0][0]}: {self.data.dataset} replays recorded timelines, whose drift is "
                "the users' own; it takes no shifts, schedule or pretraining contexts"
            )
        fitting = sorted(k for k, kind in SHIFT_KINDS.items() if kind.task == self.task)
        for where, kind in used:
            if SHIFT_KINDS[kind].task != self.task:
                raise ValueError(
                    f"{where}: {kind} shifts cannot move {self.data.dataset}'s data "
                    f"({self.task}); valid kinds for it: {', '.join(fitting)}"
                )

    def _check_pools(self) -> None:
        """Every device needs samples: the cloud and test shares must leave enough behind."""
        spec = DATASETS[self.data.dataset]
        if spec.load is None:
            return  # a generated stream never runs out
        device_share = 1 - self.data.cloud_fraction
        pools = {
            "train": spec.samples * device_share * (1 - self.data.test_fraction),
            "test": spec.samples * device_share * self.data.test_fraction,
        }
        need = MIN_SAMPLES_PER_CLASS * spec.num_classes
        for pool, size in pools.items():
            if size < need:
                raise ValueError(
                    f"data.cloud_fraction / data.test_fraction: the devices' {pool} pool would "
                    f"hold about {size:.0f} of {spec.name}'s {spec.samples} images; at least "
                    f"{need} ({MIN_SAMPLES_PER_CLASS} per class) are needed"
                )

    def _rounded_settings(self) -> list[str]:
        """Settings the run must round to whole devices, classes, contexts or samples,
        where the rounding changes what the author asked for by more than a tenth."""
        notes = []
        exact = self.rounds.participation * self.fleet.devices
        drawn = max(1, round(exact))
        if abs(drawn - exact) > 0.1 * exact:
            notes.append(
                f"rounds.participation: {self.rounds.participation:g} of {self.fleet.devices} "
                f"devices is {exact:.3g} per round; each round draws {drawn}"
            )
        asked = self.data.labeled_fraction * self.data.window
        labeled = math.floor(asked)
        if labeled and asked - labeled > 0.1 * asked:
            notes.append(
                f"data.labeled_fraction: {self.data.labeled_fraction:g} of a "
                f"{self.data.window}-sample window is {asked:.3g} samples; each window labels "
                f"{labeled} ({labeled / self.data.window:.3g})"
            )
        classes = DATASETS[self.data.dataset].num_classes
        for i, shift in enumerate(self.shifts):
            if shift.kind == "permutation" and shift.severity > 0:
                count = max(2, round(shift.severity * classes))
                if abs(count - shift.severity * classes) > 1e-9:
                    notes.append(
                        f"shifts[{i}].severity: a permutation of {shift.severity:g} of "
                        f"{classes} classes relabels {count} classes ({count / classes:g})"
                    )
        if self.pretrain.family_fraction == 0:
            notes.append(
                "pretrain.family_fraction: 0 holds nothing out: cloud-side learners (Persona's "
                "episodes, cloud-retrain) reuse the images the starting model trained on"
            )
        share = self.pretrain.known_share
        if share is not None:
            deployed = len(deployed_contexts(self.schedule, self.shifts))
            known = math.floor(share * deployed + 0.5)
            if abs(known / deployed - share) > 1e-9:
                notes.append(
                    f"pretrain.known_share: {share:g} of {deployed} deployed contexts is "
                    f"{known} (a share of {known / deployed:.3g})"
                )
        if DATASETS[self.data.dataset].ratings is not None:
            for key in ("window", "eval_samples"):
                size = getattr(self.data, key)
                if size > REPLAY_SPAN:
                    notes.append(
                        f"data.{key}: {size} samples drawn from at most {REPLAY_SPAN} recorded "
                        "interactions around the present: samples repeat"
                    )
        return notes

    def warnings(self) -> list[str]:
        """Settings that run but probably do not mean what their author intended."""
        notes = []
        horizon = self.rounds.horizon_s
        for i, shift in enumerate(self.shifts):
            if shift.onset_s >= horizon:
                notes.append(
                    f"shifts[{i}].onset_s: {shift.onset_s:g} s is at or after the horizon "
                    f"({horizon:g} s): this shift never happens"
                )
        if self.schedule is not None:
            for i, segment in enumerate(self.schedule.segments):
                if segment.from_s >= horizon:
                    notes.append(
                        f"schedule.segments[{i}].from_s: {segment.from_s:g} s is at or after "
                        f"the horizon ({horizon:g} s): this segment never starts"
                    )
        notes += self._rounded_settings()
        if self.rounds.eval_every_s > self.rounds.period_s:
            notes.append(
                f"rounds.eval_every_s: {self.rounds.eval_every_s:g} s is coarser than the round "
                f"period ({self.rounds.period_s:g} s): recovery times are rounded up to it"
            )
        return notes
