"""The one reader of sweep folders (for the reports): the axes and the rows of ``sweep.csv``."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.scenario.errors import UserError
from simulator.sweep.state import read_sweep_file


@dataclass(frozen=True)
class SweepResults:
    """A finished sweep as the report sees it: axes (key, values) and one row per cell x method."""

    folder: Path
    axes: list[tuple[str, list[Any]]]
    rows: list[dict[str, Any]]

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
    return SweepResults(folder, [(k, list(v)) for k, v in sweep.axes], rows)
