"""A sweep's grid: axes (any scalar key of the scenario) and the cells they span.

``--grid fleet.classes[0].uplink_kbps.median=50,200,1000`` is one axis; the
cells are the cartesian product of the axes. Each cell is the base scenario
with one ``--set`` per axis, validated like a scenario file before anything
runs, so a bad value is refused with the cell and the key path named.
Each cell gets its own seeds, derived from the sweep seed and the cell's
values (so a cell's seeds do not depend on which other cells the grid has).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

import yaml

from simulator.catalog.errors import ScenarioError, UserError
from simulator.catalog.seeding import rng_for
from simulator.scenario.overrides import apply_overrides, parse_key_path
from simulator.scenario.schema import Scenario
from simulator.scenario.yaml12 import dump_yaml, load_yaml

MAX_CELLS = 1000
# Keys the sweep itself sets in every cell, so an axis over them would be overwritten.
OWNED = {
    "seed": "each cell draws its own seeds from the scenario's seed and its values "
    "(--set seed=N moves them all)",
    "seeds": "the sweep's --seeds sets how many seeds every cell runs",
    "engine": "every cell runs inline in one worker (cells are the parallel unit; "
    "simulate sweep --cells-on ray spreads them)",
}
SEED_RANGE = 2**31  # cell seeds stay far below the schema's bound


@dataclass(frozen=True)
class Axis:
    """One swept key and its values (YAML-typed, in the order given)."""

    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a value per axis, a folder name and its seeds."""

    index: int
    values: tuple[tuple[str, Any], ...]
    seeds: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"cell-{self.index:03d}"

    @property
    def overrides(self) -> list[str]:
        return [f"{key}={_yaml_scalar(value)}" for key, value in self.values]

    def label(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.values)


def _yaml_scalar(value: Any) -> str:
    return dump_yaml(value, default_flow_style=True).strip().removesuffix("\n...")


def parse_axis(entry: str) -> Axis:
    """``key.path=v1,v2,...`` -> an ``Axis``; a bad entry is a one-line error."""
    key, sep, text = entry.partition("=")
    key = key.strip()
    if not sep or not key or not text.strip():
        raise UserError(
            f"--grid {entry!r}: expected KEY.PATH=V1,V2,... (e.g. data.labeled_fraction=0.1,0.5)"
        )
    try:
        path = parse_key_path(key)
    except ValueError as err:
        raise UserError(f"--grid {entry!r}: {err}") from None
    if path and path[0] in OWNED:
        raise UserError(f"--grid {key}: not a sweep axis: {OWNED[str(path[0])]}")
    values = []
    for raw in text.split(","):
        try:
            value = load_yaml(raw)
        except yaml.YAMLError:
            raise UserError(f"--grid {key}: value {raw!r} is not a YAML scalar") from None
        if isinstance(value, (dict, list)) or value is None:
            raise UserError(f"--grid {key}: value {raw!r} is not a scalar (a number, a word)")
        values.append(value)
    if len(set(map(repr, values))) != len(values):
        raise UserError(f"--grid {key}: each value may appear once; got {text}")
    return Axis(key, tuple(values))


def parse_axes(entries: list[str]) -> list[Axis]:
    """Every ``--grid`` entry; an axis may appear once."""
    if not entries:
        raise UserError("sweep: give at least one --grid KEY.PATH=V1,V2,...")
    axes = [parse_axis(entry) for entry in entries]
    keys = [axis.key for axis in axes]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise UserError(f"--grid: each key may be swept once; repeated: {', '.join(repeated)}")
    return axes


def cell_seeds(sweep_seed: int, values: tuple[tuple[str, Any], ...], count: int) -> tuple[int, ...]:
    """``count`` consecutive seeds from a start drawn from (sweep seed, the cell's values)."""
    start = int(rng_for(sweep_seed, "sweep-cell", repr(values)).integers(0, SEED_RANGE))
    return tuple(start + i for i in range(count))


def expand(axes: list[Axis], sweep_seed: int, seeds: int) -> list[Cell]:
    """The cells of the grid, in the order of the axes (the last axis varies fastest)."""
    count = math.prod(len(axis.values) for axis in axes)  # before the product is built
    if count > MAX_CELLS:
        raise UserError(f"--grid: {count:,} cells; at most {MAX_CELLS} per sweep")
    combos = list(itertools.product(*(axis.values for axis in axes)))
    cells = []
    for index, combo in enumerate(combos):
        values = tuple(zip((axis.key for axis in axes), combo, strict=True))
        cells.append(Cell(index, values, cell_seeds(sweep_seed, values, seeds)))
    return cells


def cell_scenario(base: dict[str, Any], cell: Cell, source: str) -> Scenario:
    """The cell's scenario (base document + the cell's values), validated.

    The cell's own seeds replace the base's; its engine is ``inline``: a
    sweep runs cells side by side, each in one process.
    """
    from simulator.scenario.loading import parse_scenario  # the methods: a sweep, no report

    overrides = [*cell.overrides, f"seed={cell.seeds[0]}", "engine.kind=inline"]
    try:
        document = apply_overrides(base, overrides, source=source)
        return parse_scenario(document, source=source)
    except ScenarioError as err:
        raise UserError(f"{cell.name} ({cell.label()}): {err}") from None


def check_distinct(cells: list[Cell], scenarios: list[Scenario]) -> None:
    """Two cells whose validated scenarios are the same but for their seeds (``3`` and
    ``3.0``, ``0.5`` and ``5e-1``, a method parameter ``1`` and ``1.0`` or left at its
    default) would run one experiment twice; refuse them by name."""
    from strategies.registry import validate_params  # planning a sweep, never reading one

    seen: dict[str, Cell] = {}
    for cell, scenario in zip(cells, scenarios, strict=True):
        document = scenario.model_dump(mode="json")
        document.pop("seed", None)
        document["methods"] = [  # as each method reads them, every default filled in
            {"name": m.name, "params": validate_params(m.name, m.params).model_dump(mode="json")}
            for m in scenario.methods
        ]
        canonical = json.dumps(document, sort_keys=True)
        if canonical in seen:
            first = seen[canonical]
            raise UserError(
                f"--grid: {first.name} ({first.label()}) and {cell.name} ({cell.label()}) are "
                "the same scenario once validated; give each value once"
            )
        seen[canonical] = cell
