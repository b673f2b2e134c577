"""``sweep.csv``: one row per cell and method, with the paired test that names a winner.

Within a cell every method meets the same devices, drift and samples for
each seed, so methods are compared pairwise on the cell's headline metric
(post-shift accuracy where the data shifts, else time-averaged accuracy)
with ``simulator.run.paired``. A method *wins* a cell only when its paired
95% interval lies above 0 against every other method of the cell; a cell
where no method does has no detectable winner. Each row also carries the
method's difference against the best other method (by mean), with its
interval, which is what the margin heatmap shows.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from basemodel.atomic import atomic_path
from simulator.run.accuracy import answered
from simulator.run.paired import METRICS, Comparison, compare
from simulator.run.reader import load_run
from simulator.scenario.schema import Scenario
from simulator.sweep.grid import Cell
from simulator.world.schedule import onsets

SUMMARY_COLUMNS = (
    "acc_pre_shift",
    "acc_post_shift",
    "acc_mean",
    "acc_worst10",
    "bytes_per_device_round",
    "energy_j_per_device",
)
PAIRED_COLUMNS = ("best_other", "difference", "low", "high", "verdict")


@dataclass(frozen=True)
class CellResult:
    """A finished cell: per method its mean figures and its comparison with every other."""

    cell: Cell
    metric: str
    means: dict[str, dict[str, float]]
    comparisons: dict[tuple[str, str], Comparison]  # (method, other) -> method minus other

    @property
    def methods(self) -> list[str]:
        return list(self.means)

    def best_other(self, method: str) -> str | None:
        others = [m for m in self.methods if m != method]
        scored = [m for m in others if math.isfinite(self.means[m][self.metric])]
        return max(scored, key=lambda m: self.means[m][self.metric], default=None)


def winner(methods: list[str], comparisons: Mapping[tuple[str, str], Comparison]) -> str | None:
    """The method whose paired interval is above 0 against every other, if there is one."""
    for method in methods:
        others = [m for m in methods if m != method]
        if others and all(
            (method, other) in comparisons and comparisons[(method, other)].verdict == "lead"
            for other in others
        ):
            return method
    return None


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def read_cell(folder: Path, cell: Cell, scenario: Scenario) -> CellResult:
    """Means and all pairwise comparisons of a finished cell's run folder."""
    results = load_run(folder)
    shifts = onsets(scenario)
    metric = "acc_post_shift" if shifts else "acc_mean"
    chosen = next(m for m in METRICS if m.name == metric)
    methods = results.methods
    means = {m: {k: _mean(results.summary_of(m), k) for k in SUMMARY_COLUMNS} for m in methods}
    evals = {m: {run.seed: answered(run.evals) for run in results.of(m)} for m in methods}
    window = scenario.rounds.post_shift_window_s
    comparisons = {
        (m, other): compare(evals[m], evals[other], chosen, shifts, window, (m, other))
        for m in methods
        for other in methods
        if m != other
    }
    return CellResult(cell, metric, means, comparisons)


def sweep_rows(results: list[CellResult], failed: dict[str, str]) -> list[dict[str, Any]]:
    """Rows of ``sweep.csv``: finished cells' methods, then one row per failed cell."""
    rows = []
    for result in results:
        cell_winner = winner(result.methods, result.comparisons)
        for method in result.methods:
            other = result.best_other(method)
            row: dict[str, Any] = {
                "cell": result.cell.name,
                **dict(result.cell.values),
                "method": method,
                "status": "done",
                "metric": result.metric,
                **result.means[method],
            }
            if other is not None:
                c = result.comparisons[(method, other)]
                row.update(
                    best_other=other,
                    difference=c.difference,
                    low=c.low,
                    high=c.high,
                    verdict=c.verdict,
                )
            row["cell_winner"] = cell_winner or "none detectable"
            rows.append(row)
    for name, error in sorted(failed.items()):
        rows.append({"cell": name, "status": "failed", "error": error})
    return rows


def write_sweep_csv(rows: list[dict[str, Any]], axes: list[str], path: Path) -> None:
    fields = [
        "cell",
        *axes,
        "method",
        "status",
        "metric",
        *SUMMARY_COLUMNS,
        *PAIRED_COLUMNS,
        "cell_winner",
        "error",
    ]
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
