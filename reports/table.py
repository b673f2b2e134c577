"""The report's tables and its written reading, computed from the run's files.

The results table is descriptive: each method's mean over seeds, with a 95%
t-interval when there are several seeds. Which method leads another is only
said from ``paired.csv`` (per-seed differences, a Student t interval over
seeds): where the interval excludes 0 the reading says so, otherwise it says
"no detectable difference". Below three seeds nothing is claimed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from reports.statistics import mean_ci95
from simulator.run.interval import MIN_SEEDS, TOO_FEW
from simulator.run.reader import RunResults

# (summary column, heading, format, scale)
COLUMNS = [
    ("acc_mean", "accuracy (time-avg)", "{:.4f}", 1.0),
    ("acc_pre_shift", "pre-shift", "{:.4f}", 1.0),
    ("acc_post_shift", "post-shift", "{:.4f}", 1.0),
    ("acc_post_known", "post-shift, known contexts", "{:.4f}", 1.0),
    ("acc_post_unknown", "post-shift, unknown contexts", "{:.4f}", 1.0),
    ("acc_worst10", "worst-10% devices", "{:.4f}", 1.0),
    ("recovery_s", "recovery (s)", "{:,.0f}", 1.0),
    ("bytes_up_per_device", "bytes up / device", "{:,.0f}", 1.0),
    ("bytes_down_per_device", "bytes down / device", "{:,.0f}", 1.0),
    ("energy_j_per_device", "energy / device (J)", "{:,.1f}", 1.0),
    ("device_flops_per_round", "device FLOPs / round", "{:.3g}", 1.0),
    ("device_backward_passes", "device backward passes", "{:,.0f}", 1.0),
    ("wall_s", "wall (s)", "{:,.1f}", 1.0),
]
METRIC_NAMES = {
    "acc_mean": "time-averaged accuracy",
    "acc_post_shift": "post-shift accuracy",
    "acc_post_known": "post-shift accuracy in known contexts",
    "acc_post_unknown": "post-shift accuracy in unknown contexts",
    "acc_worst10": "worst-10% accuracy",
}


@dataclass(frozen=True)
class Cell:
    mean: float
    half: float
    text: str


def value(row: dict[str, Any], column: str) -> float:
    try:
        value = float(row.get(column))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return value


def table(results: RunResults) -> dict[str, dict[str, Cell]]:
    """method -> column -> cell: the mean over seeds, with its 95% t-interval (n/a if none)."""
    out: dict[str, dict[str, Cell]] = {}
    for method in results.methods:
        out[method] = {}
        for column, _, fmt, _ in COLUMNS:
            mean, half = mean_ci95([value(r, column) for r in results.summary_of(method)])
            text = fmt.format(mean) if math.isfinite(mean) else "n/a"
            if math.isfinite(mean) and math.isfinite(half) and half > 0:
                text += " ± " + fmt.format(half)
            out[method][column] = Cell(mean, half, text)
    return out


def headline_metric(results: RunResults) -> str:
    """Post-shift accuracy where the data shifts, else time-averaged accuracy."""
    return "acc_post_shift" if results.onsets_s else "acc_mean"


def paired_rows(results: RunResults, metric: str) -> list[dict[str, Any]]:
    return [row for row in results.paired if row.get("metric") == metric]


def points(value: str | float) -> float:
    return 100.0 * float(value)


def paired_sentence(row: dict[str, Any], results: RunResults | None = None) -> str:
    """One comparison in words; a lead only where the interval excludes 0."""
    metric = METRIC_NAMES.get(str(row["metric"]), str(row["metric"]))
    if results is not None:
        metric = results.named(metric)
    method, reference, verdict = row["method"], row["reference"], row["verdict"]
    interval = f"95% CI {points(row['low']):+.2f} to {points(row['high']):+.2f} points"
    if verdict == "lead":
        return (
            f"**{method}** leads {reference} on {metric} by "
            f"{points(row['difference']):.2f} points ({interval})."
        )
    if verdict == "behind":
        return (
            f"{method} is behind {reference} on {metric} by "
            f"{-points(row['difference']):.2f} points ({interval})."
        )
    if verdict == TOO_FEW:
        return f"Too few seeds to compare {method} with {reference} on {metric} ({interval})."
    return f"No detectable difference between {method} and {reference} on {metric} ({interval})."


def divergence_warnings(results: RunResults) -> list[str]:
    """One sentence per method whose served models gave NaN or infinite outputs.

    Such a model still gets a score (NaN logits pick some class, or tie), so
    its numbers look like a poor method rather than a broken one; say which.
    """
    warnings = []
    for method in results.methods:
        rows = results.summary_of(method)
        hit = {int(r["seed"]): int(r.get("nonfinite_evals") or 0) for r in rows}
        hit = {seed: count for seed, count in hit.items() if count}
        if hit:
            where = ", ".join(f"seed {seed}: {count}" for seed, count in sorted(hit.items()))
            warnings.append(
                f"**Warning: {method} diverged**: device evaluations served a model with NaN "
                f"or infinite outputs ({where}); its scores there mean little (a smaller "
                "learning rate may help)."
            )
    return warnings


def _energy_against_bytes(results: RunResults, moved: dict[str, float]) -> list[str]:
    """Where fewer bytes do not mean less energy, and which part of the energy says why."""

    def mean_of(method: str, column: str) -> float:
        return mean_ci95([value(r, column) for r in results.summary_of(method)])[0]

    lines = []
    for thrifty in results.methods:
        for other in results.methods:
            if thrifty not in moved or other not in moved or moved[thrifty] >= moved[other]:
                continue
            e_thrifty = mean_of(thrifty, "energy_j_per_device")
            e_other = mean_of(other, "energy_j_per_device")
            if not (math.isfinite(e_thrifty) and math.isfinite(e_other) and e_thrifty > e_other):
                continue
            radio_more = mean_of(thrifty, "energy_radio_j_per_device") > mean_of(
                other, "energy_radio_j_per_device"
            )
            why = (
                "its radio costs more: every transfer pays a fixed ramp and tail "
                "(simulator/catalog/energy.py), so more transfers outweigh fewer bytes"
                if radio_more
                else "its on-device compute costs more than the radio it saves"
            )
            lines.append(
                f"By energy the order differs from traffic: {thrifty} moves "
                f"{100 * moved[thrifty] / moved[other]:.0f}% of {other}'s bytes per device but "
                f"spends {e_thrifty:,.1f} J per device against {e_other:,.1f} J ({why})."
            )
    return lines[:3]


def reading(results: RunResults) -> list[str]:
    """Sentences computed from the numbers: paired leads with intervals, then costs."""
    methods = results.methods
    if not methods:
        return ["No method finished a round."]
    lines: list[str] = []
    metric = headline_metric(results)
    if len(results.seeds) < MIN_SEEDS or not results.paired:
        lines.append(
            f"{len(results.seeds)} seed(s): too few seeds for a verdict, so no lead is "
            f"claimed; the seed is the unit of replication, and a verdict needs "
            f"{MIN_SEEDS} or more (--seeds {MIN_SEEDS})."
        )
    else:
        lines += [paired_sentence(row, results) for row in paired_rows(results, metric)]
    cells = table(results)
    moved = {
        m: cells[m]["bytes_up_per_device"].mean + cells[m]["bytes_down_per_device"].mean
        for m in methods
    }
    finite = {m: v for m, v in moved.items() if math.isfinite(v)}
    busiest = max(finite, key=lambda m: finite[m], default=None)
    if busiest is not None and finite[busiest] > 0:
        for method in methods:
            if method != busiest and method in finite and results.in_subject_family(method):
                lines.append(
                    f"Over the run, {method} moves {100 * finite[method] / finite[busiest]:.1f}% "
                    f"of the bytes per device that {busiest} moves."
                )
    lines += _energy_against_bytes(results, finite)
    silent = [m for m in methods if finite.get(m) == 0]
    if silent:
        lines.append("No byte moves for: " + ", ".join(silent) + ".")
    backward = [m for m in methods if cells[m]["device_backward_passes"].mean > 0]
    if backward:
        lines.append("Backpropagation runs on devices for: " + ", ".join(backward) + ".")
    return lines
