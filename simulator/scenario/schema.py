"""The scenario schema: one validated model for everything a run needs.

A scenario file (YAML) describes the fleet, its network, the data and how it
drifts, the round schedule, the methods to compare, the engine and the seeds.
Everything downstream reads this model, never raw YAML, so a typo is caught
here, once, with the key path that holds it. Allowed names come from the
tables that define them: shift kinds (``simulator.world.shifts``), datasets
(``simulator.world.datasets``) and device presets (``presets``); methods are
checked against their registry when a document is loaded (``loading``).

Units are SI and in the field names: seconds (``_s``), bits per second
(``_kbps`` = 1,000 bit/s), FLOP/s (``_flops``), milliseconds (``_ms``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.scenario.presets import expand_preset
from simulator.world.datasets import DATASET_NAMES
from simulator.world.shifts import COVARIATE_NAMES, FRACTION_NAMES, SHIFT_NAMES

CovariateKind = Literal[COVARIATE_NAMES]  # type: ignore[valid-type]
ShiftKindName = Literal[SHIFT_NAMES]  # type: ignore[valid-type]
DatasetName = Literal[DATASET_NAMES]  # type: ignore[valid-type]
EngineName = Literal["inline", "ray", "flower"]

PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    """Base for every scenario section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LogNormal(_Strict):
    """A per-device figure drawn once: ``median * exp(sigma * N(0, 1))``."""

    median: PositiveFloat
    sigma: Annotated[float, Field(ge=0, le=3)] = 0.0


class DeviceClass(_Strict):
    """A kind of device (a phone tier on a kind of link) and its share of the fleet.

    ``preset: NAME`` fills in the shipped figures of ``simulator.scenario.presets``
    (name included); any field given beside it overrides the preset.
    """

    @model_validator(mode="before")
    @classmethod
    def _from_preset(cls, data: Any) -> Any:
        return expand_preset(data)

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    share: PositiveFloat
    compute_flops: LogNormal
    uplink_kbps: LogNormal
    downlink_kbps: LogNormal
    rtt_ms: LogNormal
    availability: Fraction = 1.0
    crash_rate: Fraction = 0.0


class NetworkTrace(_Strict):
    """How a device's bandwidth varies over simulated time around its own median."""

    slot_s: PositiveFloat = 60.0
    sigma: Annotated[float, Field(ge=0, le=3)] = 0.3
    diurnal_amplitude: Annotated[float, Field(ge=0, lt=1)] = 0.0
    outage_probability: Fraction = 0.0


class Faults(_Strict):
    """Injected device faults: the probability, per device-round, of each.

    ``hang``: the device stalls past the deadline; ``drop``: its reply is lost;
    ``malformed``: its reply misses a record or has a wrongly shaped array;
    ``nonfinite``: its update holds NaN. (Crashes are each class's ``crash_rate``.)
    """

    hang: Fraction = 0.0
    drop: Fraction = 0.0
    malformed: Fraction = 0.0
    nonfinite: Fraction = 0.0

    @model_validator(mode="after")
    def _at_most_one(self) -> Faults:
        if self.hang + self.drop + self.malformed + self.nonfinite > 1:
            raise ValueError("fault probabilities must add up to at most 1")
        return self


class Fleet(_Strict):
    devices: Annotated[int, Field(ge=1, le=1_000_000)]
    classes: Annotated[list[DeviceClass], Field(min_length=1)]
    network: NetworkTrace = NetworkTrace()
    faults: Faults = Faults()

    @model_validator(mode="after")
    def _unique_class_names(self) -> Fleet:
        names = [c.name for c in self.classes]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"device class names must be unique; repeated: {duplicated}")
        return self


class Data(_Strict):
    dataset: DatasetName = "mnist"
    dirichlet_alpha: PositiveFloat = 0.5
    cloud_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.3
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    window: Annotated[int, Field(ge=1, le=10_000)] = 32
    window_period_s: PositiveFloat = 60.0
    labeled_fraction: Fraction = 0.5
    label_delay_s: Annotated[float, Field(ge=0)] = 0.0
    eval_samples: Annotated[int, Field(ge=1, le=10_000)] = 32


class AppliesTo(_Strict):
    """Which devices a shift touches: all, a seeded random fraction, or one device class."""

    all: bool = False
    fraction: Fraction | None = None
    group: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> AppliesTo:
        chosen = [self.all, self.fraction is not None, self.group is not None]
        if sum(chosen) != 1:
            raise ValueError("set exactly one of 'all: true', 'fraction' or 'group'")
        return self


class Shift(_Strict):
    """A shift that starts at ``onset_s`` and reaches full severity after ``ramp_s``.

    Covariate kinds corrupt images; ``severity`` is in the kind's own unit (see
    ``simulator.world.shifts``). ``label`` (class-prior drift) moves each
    device's class prior toward a new one by ``severity`` (0..1).
    ``permutation`` (concept shift) relabels a ``severity`` fraction of the
    classes (a cyclic swap among them); during a ramp, a growing share of
    samples follows the new labels. With ``every_s`` and ``lasts_s`` the shift
    recurs: it is in force for ``lasts_s`` out of every ``every_s`` seconds
    after its onset (a context that returns).
    """

    kind: ShiftKindName
    severity: Annotated[float, Field(ge=0)]
    onset_s: Annotated[float, Field(ge=0)]
    ramp_s: Annotated[float, Field(ge=0)] = 0.0
    every_s: PositiveFloat | None = None
    lasts_s: PositiveFloat | None = None
    applies_to: AppliesTo = AppliesTo(all=True)

    @model_validator(mode="after")
    def _consistent(self) -> Shift:
        if self.kind in FRACTION_NAMES and self.severity > 1:
            raise ValueError(f"severity of a {self.kind} shift is a fraction: at most 1")
        if (self.every_s is None) != (self.lasts_s is None):
            raise ValueError("a recurring shift needs both every_s and lasts_s")
        if self.every_s is not None and self.lasts_s is not None and self.lasts_s > self.every_s:
            raise ValueError("lasts_s cannot be longer than every_s")
        return self


class Rounds(_Strict):
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

    @property
    def horizon_s(self) -> float:
        return self.count * self.period_s


class MethodSpec(_Strict):
    """One method to run; ``params`` are validated by the method's own parameter model."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class KnownContext(_Strict):
    """A covariate shift the cloud knows before deployment (it has data under it)."""

    kind: CovariateKind
    severity: Annotated[float, Field(ge=0)]


class Pretrain(_Strict):
    """Cloud pretraining of the shared starting model (backprop in the cloud only).

    The model trains on the cloud's data, clean and under each known context;
    Persona's adapter trains on episodes from the same contexts. Every method
    starts from this model.
    """

    epochs: Annotated[int, Field(ge=0, le=1000)] = 8
    batch_size: Annotated[int, Field(ge=1)] = 64
    lr: PositiveFloat = 1e-3
    contexts: list[KnownContext] = Field(default_factory=list)
    # Share of the cloud's data held out from the starting model for adaptation
    # methods' own cloud training (Persona's episodes): a model cannot learn how
    # to adapt from data its base has already memorised.
    adapter_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.4


class Engine(_Strict):
    """Where devices run: ``inline`` (this process, one batch per exchange), ``ray`` (Ray
    actors, each owning a shard of the fleet), ``flower`` (Flower's own simulation
    runtime, one message per device: the reference engine).

    ``ray_address`` joins a Ray cluster (``ray`` and ``flower``); ``num_cpus`` sizes
    a private local Ray; ``shards`` is the number of device shards on ``ray``
    (default: one per CPU); ``cpus_per_device`` is Flower's per-node reservation
    on ``flower``.
    """

    kind: EngineName = "ray"
    ray_address: str | None = None
    cpus_per_device: PositiveFloat = 1.0
    num_cpus: Annotated[int, Field(ge=1)] | None = None
    shards: Annotated[int, Field(ge=1, le=4096)] | None = None
    # Wall seconds the cloud waits for one exchange's replies before it treats
    # the engine as broken (a frozen worker) and restarts it.
    reply_timeout_s: PositiveFloat = 600.0


class Scenario(_Strict):
    """A whole scenario file, validated."""

    # A folder name under the output folder: letters, digits, '_', '.', '-', not only dots.
    name: Annotated[
        str,
        Field(
            min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$"
        ),
    ]
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    seeds: Annotated[int, Field(ge=1, le=100)] = 1
    fleet: Fleet
    data: Data = Data()
    shifts: list[Shift] = Field(default_factory=list)
    rounds: Rounds
    methods: Annotated[list[MethodSpec], Field(min_length=1)]
    pretrain: Pretrain = Pretrain()
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
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names):
            raise ValueError(f"methods: each method may appear once; got {names}")
        return self
