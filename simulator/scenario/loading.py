"""Reading a scenario: file -> YAML (safe loader) -> overrides -> schema -> method registry.

Every failure becomes one ``ScenarioError`` whose lines name the file, the key
path, what was expected and what was found. Methods are checked here, against
the registry, rather than inside the schema: the schema (and the world built
from it) then needs no method code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simulator.catalog.errors import ScenarioError, closest, format_validation_error
from simulator.scenario.documents import read_document
from simulator.scenario.overrides import apply_overrides
from simulator.scenario.schema import MethodSpec, Scenario
from strategies.registry import get_method, method_names, validate_params


def check_methods(methods: list[MethodSpec], task: str = "classification") -> None:
    """Method names, tasks and parameters against the registry; ``ValueError`` names the entry."""
    valid = method_names()
    for i, spec in enumerate(methods):
        if spec.name not in valid:
            raise ValueError(
                f"methods[{i}].name: unknown method {spec.name!r}{closest(spec.name, valid)}; "
                f"valid methods: {', '.join(valid)}"
            )
        method = get_method(spec.name)
        if task not in method.tasks:
            fitting = [m for m in valid if task in get_method(m).tasks]
            raise ValueError(
                f"methods[{i}].name: {spec.name} does not run on {task} "
                f"({method.task_note}); methods for {task}: {', '.join(fitting)}"
            )
        try:
            validate_params(spec.name, spec.params)
        except ValueError as err:
            raise ValueError(f"methods[{i}].params: {err}") from None


MAX_VALUES = 100_000  # values in a scenario document once YAML aliases are expanded


def _count_values(document: Any, budget: int) -> int:
    """Values in ``document`` counting every alias use, stopping once past ``budget``."""
    count, stack = 0, [document]
    while stack and count <= budget:
        value = stack.pop()
        count += 1
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return count


def parse_scenario(document: Any, source: str = "<scenario>") -> Scenario:
    """Validate a decoded document; every failure becomes one ``ScenarioError``."""
    if not isinstance(document, dict):
        found = type(document).__name__ if document is not None else "an empty document"
        raise ScenarioError(f"{source}: expected a mapping of scenario keys, found {found}")
    if _count_values(document, MAX_VALUES) > MAX_VALUES:
        raise ScenarioError(
            f"{source}: the document expands to more than {MAX_VALUES:,} values "
            "(nested YAML aliases?); a scenario is far smaller"
        )
    try:
        scenario = Scenario.model_validate(document)
    except ValidationError as err:
        raise ScenarioError(format_validation_error(err, source, Scenario)) from None
    try:
        check_methods(scenario.methods, scenario.task)
    except ValueError as err:
        raise ScenarioError(f"{source}: {err}") from None
    return scenario


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Load, apply ``--set KEY.PATH=VALUE`` overrides, and validate a scenario file."""
    document = _traces_beside(read_document(path), Path(path).parent)
    document = apply_overrides(document, overrides, source=str(path))
    return parse_scenario(document, source=str(path))


def _traces_beside(document: Any, folder: Path) -> Any:
    """Relative trace paths written in a scenario file name files beside it (so a
    shipped scenario runs from any folder); a ``--set`` path is the shell's, as given."""
    traces = document.get("fleet", {}).get("traces") if isinstance(document, dict) else None
    if not isinstance(traces, dict):
        return document
    beside = {
        key: str(folder / value) if isinstance(value, str) and not _absolute(value) else value
        for key, value in traces.items()
        if key in ("capacity", "behaviour")
    }
    fleet = {**document["fleet"], "traces": {**traces, **beside}}
    return {**document, "fleet": fleet}


def _absolute(value: str) -> bool:
    return Path(value).expanduser().is_absolute()


# Settings added after run folders already existed, left out of the stored document while at
# their defaults: a folder written before them keeps its digest and checkpoint keys, so it
# still resumes.
LATER_DEFAULTS = {
    "fleet": {"transport": {"runtime": "payload", "request_s": None}},
    "engine": {
        "device": "cpu",
        "batch_devices": None,
        "superlink": None,
        "superlink_certificates": None,
    },
}


def scenario_to_document(scenario: Scenario) -> dict[str, Any]:
    """The resolved scenario as plain data (what a run folder stores)."""
    document = scenario.model_dump(mode="json")
    for section, defaults in LATER_DEFAULTS.items():
        for key, default in defaults.items():
            if document[section].get(key) == default:
                document[section].pop(key)
    return document


# Sections that say where a run executes and where its files go, not what world it simulates.
PLACEMENT_SECTIONS = ("engine", "output")


def world_fingerprint(scenario: Scenario) -> str:
    """A short digest of what a scenario simulates (where it runs left out).

    A real device checks it against the cloud's: a SuperNode started with another
    scenario file, other overrides or another version of one refuses the run.
    """
    document = {
        k: v for k, v in scenario_to_document(scenario).items() if k not in PLACEMENT_SECTIONS
    }
    canonical = json.dumps(document, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
