"""The report's table (mean and 95% CI over seeds, best in bold) and its written reading."""

from __future__ import annotations

import math
from dataclasses import dataclass

from reports.statistics import mean_ci95
from simulator.run.reader import RunResults

# (summary column, heading, higher is better, format)
COLUMNS = [
    ("acc_mean", "accuracy (time-avg)", True, "{:.4f}"),
    ("acc_worst10", "worst-10% accuracy", True, "{:.4f}"),
    ("recovery_s", "recovery (s)", False, "{:,.0f}"),
    ("bytes_up_per_device", "bytes up / device", False, "{:,.0f}"),
    ("bytes_down_per_device", "bytes down / device", False, "{:,.0f}"),
    ("device_flops_per_round", "device FLOPs / round", False, "{:.3g}"),
    ("device_backward_passes", "device backward passes", False, "{:,.0f}"),
    ("wall_s", "wall (s)", False, "{:,.1f}"),
]


@dataclass(frozen=True)
class Cell:
    mean: float
    half: float
    text: str
    best: bool


def table(results: RunResults) -> dict[str, dict[str, Cell]]:
    """method -> column -> cell; ``best`` marks the best mean of each column."""
    raw = {
        method: {
            col: mean_ci95([float(r[col]) for r in results.summary_of(method)])
            for col, *_ in COLUMNS
        }
        for method in results.methods
    }
    out: dict[str, dict[str, Cell]] = {m: {} for m in results.methods}
    for col, _, higher, fmt in COLUMNS:
        means = [raw[m][col][0] for m in results.methods if math.isfinite(raw[m][col][0])]
        best = (max(means) if higher else min(means)) if means else None
        for method in results.methods:
            mean, half = raw[method][col]
            text = fmt.format(mean) if math.isfinite(mean) else "n/a"
            if half > 0:
                text += " ± " + fmt.format(half)
            out[method][col] = Cell(mean, half, text, best is not None and mean == best)
    return out


def reading(results: RunResults) -> list[str]:
    """A few sentences computed from the numbers: who wins, by how much, at what cost."""
    cells = table(results)
    methods = results.methods
    if not methods:
        return ["No method finished a round."]
    acc = {m: cells[m]["acc_mean"].mean for m in methods}
    ranked = sorted(methods, key=lambda m: acc[m], reverse=True)
    best = ranked[0]
    lines = [f"**{best}** has the highest time-averaged accuracy ({acc[best]:.4f})."]
    for other in ranked[1:]:
        gap = 100 * (acc[best] - acc[other])
        lines.append(f"It leads {other} ({acc[other]:.4f}) by {gap:.2f} points.")
    moved = {
        m: cells[m]["bytes_up_per_device"].mean + cells[m]["bytes_down_per_device"].mean
        for m in methods
    }
    busiest = max(methods, key=lambda m: moved[m])
    if moved[busiest] > 0 and best != busiest:
        share = 100 * moved[best] / moved[busiest]
        line = (
            f"Over the run, {best} moves {share:.1f}% of the bytes per device that {busiest} moves"
        )
        per_round = {
            m: mean_ci95(
                [float(r.get("bytes_per_device_round") or 0.0) for r in results.summary_of(m)]
            )[0]
            for m in (best, busiest)
        }
        if per_round[busiest] > 0:
            line += f" ({100 * per_round[best] / per_round[busiest]:.1f}% per device-round)"
        lines.append(line + ".")
    worst = {m: cells[m]["acc_worst10"].mean for m in methods}
    fairest = max(methods, key=lambda m: worst[m])
    lines.append(
        f"The worst-served 10% of devices fare best under {fairest} ({worst[fairest]:.4f})."
    )
    backward = [m for m in methods if cells[m]["device_backward_passes"].mean > 0]
    if backward:
        lines.append("Backpropagation runs on devices for: " + ", ".join(backward) + ".")
    if len(results.seeds) == 1:
        lines.append("One seed only: no confidence intervals; run with --seeds N for them.")
    return lines
