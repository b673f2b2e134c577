"""What a run is asked to do (``RunPlan``), and ``run.json``: the plan as a resumed run reads it.

``run.json`` is input to ``simulate --resume`` like a scenario file is to a
run, so it is validated the same way: unknown keys, unknown methods,
negative seeds and the like are one-line errors naming the file and key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from basemodel.atomic import write_atomically
from simulator.catalog.errors import UserError, format_validation_error
from simulator.run.defaults import DEFAULT_CHECKPOINT_BUDGET, DEFAULT_CHECKPOINT_EVERY
from simulator.scenario.schema import Scenario

PLAN_FILE = "run.json"
PLAN_FORMAT = 1
MAX_SEED = 2**63 - 1  # seeds feed 64-bit generators


@dataclass(frozen=True)
class RunPlan:
    """What to run: which methods, which seeds, where, and how often to checkpoint."""

    scenario: Scenario
    methods: list[str]
    seeds: list[int]
    out_dir: Path
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY  # 0: none
    checkpoint_budget: float | None = DEFAULT_CHECKPOINT_BUDGET  # None: no limit
    keep_final: bool = False  # keep each method-seed's end state (``final/``)

    def __post_init__(self) -> None:
        listed = {m.name for m in self.scenario.methods}
        missing = [m for m in self.methods if m not in listed]
        if missing:  # the scenario holds every method's parameters
            raise ValueError(f"methods {missing} are not in the scenario's methods")


class PlanFile(BaseModel):
    """The contents of ``run.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1]
    methods: Annotated[list[str], Field(min_length=1)]
    seeds: Annotated[list[Annotated[int, Field(ge=0, le=MAX_SEED)]], Field(min_length=1)]
    checkpoint_every: Annotated[int, Field(ge=0)]
    checkpoint_budget: Annotated[float, Field(gt=0, le=1)] | None
    keep_final: bool = False
    # The scenario the run started with (sha256 of its canonical JSON): a resumed
    # run refuses a scenario.yaml edited since. Absent in folders of older versions.
    scenario_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    # Every file the scenario reads besides itself (key path -> sha256), and the
    # package version that wrote the rows: a resume refuses either changed.
    inputs_sha256: dict[str, Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] | None = None
    version: str | None = None

    @field_validator("methods")
    @classmethod
    def _registered_and_unique(cls, methods: list[str]) -> list[str]:
        from strategies.registry import method_names  # a run being resumed, not a report

        unknown = [m for m in methods if m not in method_names()]
        if unknown:
            raise ValueError(
                f"unknown method {unknown[0]!r} (not in this version); valid methods: "
                f"{', '.join(method_names())}"
            )
        if len(set(methods)) != len(methods):
            raise ValueError(f"each method may appear once; got {methods}")
        return methods

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"each seed may appear once; got {seeds}")
        return seeds


def scenario_digest(scenario: Scenario) -> str:
    """A fingerprint of every value of a scenario (key order and formatting do not matter)."""
    from simulator.scenario.loading import scenario_to_document

    canonical = json.dumps(scenario_to_document(scenario), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def input_digests(scenario: Scenario, fresh: bool = False) -> dict[str, str]:
    """The sha256 of every file the scenario reads besides itself, by its key path.

    A run's start shares one digest per process with the pretraining cache key
    (the file is read once); ``fresh`` reads it again (a resume's check: the file
    may have been replaced since).
    """
    from simulator.catalog.datasets import DATASETS
    from simulator.world.replay import ratings_digest

    found = {}
    fmt = DATASETS[scenario.data.dataset].ratings
    if scenario.data.path is not None and fmt is not None:
        found["data.path"] = ratings_digest(scenario.data.path, fmt, fresh=fresh)
    traces = scenario.fleet.traces
    for key in ("capacity", "behaviour"):
        path = None if traces is None else getattr(traces, key)
        if path is not None:  # small files: read afresh each time
            found[f"fleet.traces.{key}"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return found


def package_version() -> str | None:
    """The installed persona-fleet version (None when run from a bare source tree)."""
    try:
        return metadata.version("persona-fleet")
    except metadata.PackageNotFoundError:
        return None


def changed_inputs(stored: PlanFile, scenario: Scenario) -> list[str]:
    """What differs from when the run started: input files by key path, the version."""
    changed = []
    if stored.inputs_sha256 is not None:
        now = input_digests(scenario, fresh=True)
        changed += [
            key
            for key in sorted(set(now) | set(stored.inputs_sha256))
            if now.get(key) != stored.inputs_sha256.get(key)
        ]
    now = package_version()
    if stored.version is not None and now is not None and stored.version != now:
        changed.append(f"the package version ({stored.version} then, {now} now)")
    return changed


def write_plan(folder: Path, plan: RunPlan) -> None:
    """What ``simulate --resume`` needs besides the scenario."""
    document = PlanFile(
        format=PLAN_FORMAT,
        methods=plan.methods,
        seeds=plan.seeds,
        checkpoint_every=plan.checkpoint_every,
        checkpoint_budget=plan.checkpoint_budget,
        keep_final=plan.keep_final,
        scenario_sha256=scenario_digest(plan.scenario),
        inputs_sha256=input_digests(plan.scenario),
        version=package_version(),
    ).model_dump()
    write_atomically(folder / PLAN_FILE, json.dumps(document, indent=2) + "\n")


def read_plan(folder: Path) -> PlanFile:
    """The run's plan, or a one-line error naming what is missing or wrong."""
    if not folder.is_dir():
        raise UserError(f"{folder}: no such run folder")
    path = folder / PLAN_FILE
    if not path.is_file() or not (folder / "scenario.yaml").is_file():
        raise UserError(
            f"{folder}: not a resumable run folder (needs scenario.yaml and {PLAN_FILE})"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: unreadable run plan ({err})") from None
    if not isinstance(document, dict):
        raise UserError(f"{path}: expected a JSON object, found {type(document).__name__}")
    try:
        return PlanFile.model_validate(document)
    except ValidationError as err:
        raise UserError(format_validation_error(err, str(path)).split("\n")[0]) from None
