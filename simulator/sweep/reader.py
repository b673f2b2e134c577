"""The one reader of sweep folders (for the reports): the axes and the rows of ``sweep.csv``."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.catalog.errors import UserError
from simulator.run.reader import RECORDED_FILE, read_recorded
from simulator.sweep.state import read_sweep_file


@dataclass(frozen=True)
class SweepResults:
    """A finished sweep as the report sees it: axes (key, values) and one row per cell x method."""

    folder: Path
    axes: list[tuple[str, list[Any]]]
    rows: list[dict[str, Any]]

    # The methods' declared roles, as a finished cell recorded them (empty: none did).
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def subject(self) -> str | None:
        """The method the project studies, if it ran (its margin is mapped)."""
        return next((m for m, r in self.roles.items() if r.get("role") == "subject"), None)

    @property
    def colours(self) -> dict[str, str]:
        return {m: str(r["colour"]) for m, r in self.roles.items() if r.get("colour")}

    def done(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == "done"]

    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == "failed"]

    def cell_values(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row's axis values, typed like the axes (the CSV holds text)."""
        return {key: next(v for v in values if str(v) == row[key]) for key, values in self.axes}


def load_sweep(folder: str | Path) -> SweepResults:
    folder = Path(folder)
    sweep = read_sweep_file(folder)
    path = folder / "sweep.csv"
    if not path.is_file():
        raise UserError(f"{folder}: no sweep.csv (the sweep has not finished a cell)")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    roles: dict[str, dict[str, Any]] = {}
    for cell in sorted((folder / "cells").glob("*/")):
        if (cell / RECORDED_FILE).is_file():
            roles = read_recorded(cell / RECORDED_FILE).get("methods") or {}
            break
    return SweepResults(folder, [(k, list(v)) for k, v in sweep.axes], rows, roles)
