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

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.run.folder import metrics_path
from simulator.run.plan import MAX_SEED
from simulator.run.reader import RunFolderError, read_rows
from simulator.scenario.errors import UserError, format_validation_error
from simulator.sweep.grid import Cell

SWEEP_FILE = "sweep.json"


class CellEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    index: Annotated[int, Field(ge=0)]
    values: list[tuple[str, Any]]
    seeds: Annotated[list[Annotated[int, Field(ge=0, le=MAX_SEED)]], Field(min_length=1)]


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

    def cell_list(self) -> list[Cell]:
        return [
            Cell(c.index, tuple((k, v) for k, v in c.values), tuple(c.seeds)) for c in self.cells
        ]


def write_sweep_file(folder: Path, sweep: SweepFile) -> None:
    tmp = folder / f".{SWEEP_FILE}.tmp"
    tmp.write_text(json.dumps(sweep.model_dump(mode="json"), indent=1))
    tmp.replace(folder / SWEEP_FILE)


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
