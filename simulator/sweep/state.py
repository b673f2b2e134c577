"""A sweep folder: what was asked (``sweep.json``) and where each cell stands.

    sweeps/<scenario>/<timestamp>/
        sweep.json            the base scenario, the axes, methods, seeds, the cells
        cells/cell-NNN/       an ordinary run folder per cell (``simulate report`` works)
        cells/cell-NNN.log    what the cell's run printed
        cells/cell-NNN.error  why a cell failed (absent when it did not)
        sweep.csv, sweep.md, sweep.html, plots/   written by the driver at the end

A cell is done when its run folder has a summary and every method-seed run
finished; anything else is continued by ``simulate sweep --resume``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from basemodel.atomic import write_atomically
from simulator.catalog.errors import UserError, format_validation_error
from simulator.run.folder import metrics_path
from simulator.run.plan import MAX_SEED, scenario_digest
from simulator.run.reader import RunFolderError, read_rows
from simulator.scenario.schema import Scenario
from simulator.sweep.grid import Cell

SWEEP_FILE = "sweep.json"


class CellEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    index: Annotated[int, Field(ge=0)]
    values: list[tuple[str, Any]]
    seeds: Annotated[list[Annotated[int, Field(ge=0, le=MAX_SEED)]], Field(min_length=1)]
    # sha256 of the cell's validated scenario when the sweep started (absent in older
    # folders): a resume rebuilds every cell from the base and refuses one that differs.
    digest: str | None = None


class SweepFile(BaseModel):
    """The contents of ``sweep.json`` (validated when a sweep is resumed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1]
    source: str
    base: dict[str, Any]
    axes: list[tuple[str, list[Any]]]
    methods: Annotated[list[str], Field(min_length=1)]
    sweep_seed: Annotated[int, Field(ge=0, le=MAX_SEED)]
    cells: Annotated[list[CellEntry], Field(min_length=1)]

    @model_validator(mode="after")
    def _one_entry_per_index(self) -> SweepFile:
        indices = [c.index for c in self.cells]
        twice = sorted({i for i in indices if indices.count(i) > 1})
        if twice:  # two entries would share one cell folder, and one would never run
            raise ValueError(f"cells: index {twice[0]} appears more than once")
        return self

    def cell_list(self) -> list[Cell]:
        return [
            Cell(c.index, tuple((k, v) for k, v in c.values), tuple(c.seeds)) for c in self.cells
        ]


def write_sweep_file(folder: Path, sweep: SweepFile) -> None:
    write_atomically(folder / SWEEP_FILE, json.dumps(sweep.model_dump(mode="json"), indent=1))


def read_sweep_file(folder: Path) -> SweepFile:
    """``sweep.json`` of a sweep folder, or a one-line error naming it."""
    path = folder / SWEEP_FILE
    if not path.is_file():
        raise UserError(f"{folder}: not a sweep folder (no {SWEEP_FILE})")
    try:
        return SweepFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path}: not valid JSON (damaged?)") from None
    except ValidationError as err:
        raise UserError(format_validation_error(err, str(path))) from None


def check_cells_unchanged(folder: Path, sweep: SweepFile, scenarios: list[Scenario]) -> None:
    """Refuse a resume whose cells no longer build the scenarios they started with.

    A hand edit of ``sweep.json`` (its base, a cell's values) would otherwise
    run the remaining cells under other settings than the finished ones, and
    the table would set them side by side as one experiment.
    """
    for entry, scenario in zip(sweep.cells, scenarios, strict=True):
        if entry.digest is not None and entry.digest != scenario_digest(scenario):
            raise UserError(
                f"{folder / SWEEP_FILE}: cell-{entry.index:03d} no longer builds the scenario "
                "it started with (its base or values were edited); restore the file or start "
                "a new sweep"
            )


def cell_folder(folder: Path, cell: Cell) -> Path:
    return folder / "cells" / cell.name


def cell_error_path(folder: Path, cell: Cell) -> Path:
    return folder / "cells" / f"{cell.name}.error"


def cell_done(folder: Path, cell: Cell, methods: list[str]) -> bool:
    """Whether the cell's run folder holds a finished run of every method and seed."""
    run = cell_folder(folder, cell)
    if not (run / "summary.json").is_file():
        return False
    for seed in cell.seeds:
        for method in methods:
            path = metrics_path(run, method, seed)
            try:
                if not path.is_file() or not any(r["kind"] == "end" for r in read_rows(path)):
                    return False
            except RunFolderError:
                return False
    return True
