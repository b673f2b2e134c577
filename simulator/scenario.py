"""The scenario: one validated model for everything a run needs.

A scenario file (YAML) describes the fleet, its network, the data and how it
drifts, the round schedule, the methods to compare, the engine and the seeds.
Everything downstream reads this model, never raw YAML, so a typo is caught
here, once, with the key path that holds it.

Units are SI and in the field names: seconds (``_s``), bits per second
(``_kbps`` = 1,000 bit/s), FLOP/s (``_flops``), milliseconds (``_ms``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.errors import ScenarioError, format_validation_error

ImageShiftKind = Literal[
    "rotation", "noise", "blur", "contrast", "brightness", "occlusion", "inversion"
]
ShiftKind = Literal[
    "rotation",
    "noise",
    "blur",
    "contrast",
    "brightness",
    "occlusion",
    "inversion",
    "label",
    "permutation",
]
FRACTION_KINDS = ("contrast", "occlusion", "inversion", "label", "permutation")
DatasetName = Literal["mnist", "digits"]
EngineName = Literal["ray", "inline"]

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

    ``preset: NAME`` fills in the shipped figures of ``simulator.device_classes``
    (name included); any field given beside it overrides the preset.
    """

    @model_validator(mode="before")
    @classmethod
    def _from_preset(cls, data: Any) -> Any:
        from simulator.device_classes import expand_preset

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
    ``simulator.corruptions``). ``label`` (class-prior drift) moves each
    device's class prior toward a new one by ``severity`` (0..1).
    ``permutation`` (concept shift) relabels a ``severity`` fraction of the
    classes (a cyclic swap among them); during a ramp, a growing share of
    samples follows the new labels. With ``every_s`` and ``lasts_s`` the shift
    recurs: it is in force for ``lasts_s`` out of every ``every_s`` seconds
    after its onset (a context that returns).
    """

    kind: ShiftKind
    severity: Annotated[float, Field(ge=0)]
    onset_s: Annotated[float, Field(ge=0)]
    ramp_s: Annotated[float, Field(ge=0)] = 0.0
    every_s: PositiveFloat | None = None
    lasts_s: PositiveFloat | None = None
    applies_to: AppliesTo = AppliesTo(all=True)

    @model_validator(mode="after")
    def _consistent(self) -> Shift:
        if self.kind in FRACTION_KINDS and self.severity > 1:
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

    kind: ImageShiftKind
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
    kind: EngineName = "ray"
    ray_address: str | None = None
    cpus_per_device: PositiveFloat = 1.0
    num_cpus: Annotated[int, Field(ge=1)] | None = None
    # Ray: wall seconds the cloud waits for one exchange's replies before it
    # treats the engine as broken (a frozen worker) and restarts it.
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
        _check_methods(self.methods)
        return self


def _check_methods(methods: list[MethodSpec]) -> None:
    """Validate method names and parameters against the registry (one place for both)."""
    from strategies.registry import method_names, validate_params

    valid = method_names()
    for i, spec in enumerate(methods):
        if spec.name not in valid:
            raise ValueError(
                f"methods[{i}].name: unknown method {spec.name!r}; valid methods: "
                f"{', '.join(valid)}"
            )
        try:
            validate_params(spec.name, spec.params)
        except ValueError as err:
            raise ValueError(f"methods[{i}].params: {err}") from None


def parse_scenario(document: Any, source: str = "<scenario>") -> Scenario:
    """Validate a decoded document; every failure becomes one ``ScenarioError``."""
    from pydantic import ValidationError

    if not isinstance(document, dict):
        found = type(document).__name__ if document is not None else "an empty document"
        raise ScenarioError(f"{source}: expected a mapping of scenario keys, found {found}")
    try:
        return Scenario.model_validate(document)
    except ValidationError as err:
        raise ScenarioError(format_validation_error(err, source)) from None


def read_document(path: str | Path) -> dict[str, Any]:
    """Read a scenario file with the safe YAML loader (a scenario is data, never code)."""
    path = Path(path)
    if not path.exists():
        raise ScenarioError(f"{path}: scenario file not found")
    if path.is_dir():
        raise ScenarioError(f"{path}: is a folder, expected a scenario file (.yaml)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError(f"{path}: cannot read scenario file ({err})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ScenarioError(f"{path}: {where}invalid YAML ({problem})") from None
    if not isinstance(document, dict):
        found = type(document).__name__ if document is not None else "an empty file"
        raise ScenarioError(f"{path}: expected a mapping of scenario keys, found {found}")
    return document


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Load, apply ``--set KEY.PATH=VALUE`` overrides, and validate a scenario file."""
    from simulator.overrides import apply_overrides

    document = read_document(path)
    document = apply_overrides(document, overrides, source=str(path))
    return parse_scenario(document, source=str(path))


def scenario_to_document(scenario: Scenario) -> dict[str, Any]:
    """The resolved scenario as plain data (what a run folder stores)."""
    return scenario.model_dump(mode="json")
