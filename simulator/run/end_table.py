"""The short table a finished run prints: one line per method, means over seeds.

The full figures are in ``summary.csv`` (every column at full precision); a
person at a terminal wants the few that decide: accuracy before and after the
shift, what the method moved and spent per device, and the verdict of the
paired comparison against ``static`` (with two seeds or more).
"""

from __future__ import annotations

import math
from typing import Any

from simulator.run.reader import RunResults


def end_of_run_table(results: RunResults) -> str:
    """The table as aligned text lines (no trailing newline); accuracies in points."""
    name = "acc" if results.metric == "accuracy" else results.metric
    shifted = bool(results.onsets_s)
    columns = ["acc_pre_shift", "acc_post_shift"] if shifted else ["acc_mean"]
    labels = [f"{name} pre", f"{name} post"] if shifted else [f"{name} mean"]
    reference = results.reference  # what the verdicts compare with (static), if it ran
    header = ["method", *labels, "KB/device", "J/device", f"vs {reference}" if reference else ""]
    lines = [header]
    verdicts = _verdicts(results.paired, columns[-1], reference)
    for method in results.methods:
        rows = results.summary_of(method)
        moved = _mean(
            [_number(r, "bytes_up_per_device") + _number(r, "bytes_down_per_device") for r in rows]
        )
        lines.append(
            [
                method,
                *(_percent(_mean([_number(r, column) for r in rows])) for column in columns),
                "-" if math.isnan(moved) else f"{moved / 1000:,.1f}",
                _fixed(_mean([_number(r, "energy_j_per_device") for r in rows]), 1),
                "" if method == reference else verdicts.get(method, _one_seed(rows)),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )


def _verdicts(paired: list[dict[str, Any]], metric: str, reference: str | None) -> dict[str, str]:
    """Each method's difference from ``reference`` on ``metric``, with interval and verdict."""
    words = {}
    for row in paired:
        if row.get("reference") != reference or row.get("metric") != metric:
            continue
        try:
            difference, low, high = (float(row[k]) * 100 for k in ("difference", "low", "high"))
        except (KeyError, TypeError, ValueError):
            continue
        interval = f" [{low:+.1f}, {high:+.1f}]" if math.isfinite(low) else ""
        words[str(row["method"])] = f"{difference:+.1f}{interval} {row.get('verdict', '')}"
    return words


def _one_seed(rows: list[dict[str, Any]]) -> str:
    return "one seed: no verdict" if len(rows) < 2 else "-"


def _number(row: dict[str, Any], key: str) -> float:
    value = row.get(key)
    return float(value) if isinstance(value, (int, float)) else math.nan


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 100:.1f}"


def _fixed(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"
