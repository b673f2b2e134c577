"""From metrics files to ``summary.json`` / ``summary.csv``: one row per method and seed.

The columns listed in ``SUMMARY_COLUMNS`` are a stable interface: users'
scripts and the reports read them. Every value is computed from the rows the
run wrote; nothing here looks at the live simulation.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from simulator.run.reader import read_rows

SUMMARY_COLUMNS = [
    "method",
    "seed",
    "acc_mean",
    "acc_worst10",
    "recovery_s",
    "bytes_up_per_device",
    "bytes_down_per_device",
    "device_flops_per_round",
    "device_backward_passes",
    "rounds",
    "dropped_device_rounds",
    "sim_duration_s",
    "wall_s",
    # Further columns (may grow; the ones above are stable).
    "acc_final",
    "acc_post_shift",
    "recovery_censored",
    "late_device_rounds",
    "failed_device_rounds",
    "device_rounds",
    "round_duration_mean_s",
    "bytes_per_device_round",
    "prototypes_final",
    "complete",
]


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def worst_fraction_mean(evals: list[dict[str, Any]], fraction: float = 0.1) -> float:
    """Mean time-averaged accuracy of the worst ``fraction`` of evaluated devices."""
    per_device: dict[int, list[float]] = {}
    for row in evals:
        for device, acc in zip(row["devices"], row["accs"], strict=True):
            per_device.setdefault(device, []).append(acc)
    if not per_device:
        return float("nan")
    averages = sorted(float(np.mean(v)) for v in per_device.values())
    count = max(1, math.ceil(fraction * len(averages)))
    return float(np.mean(averages[:count]))


def recovery_times(
    evals: list[dict[str, Any]], onsets: list[float], horizon_s: float, tolerance: float
) -> tuple[list[float], int]:
    """Seconds from each shift onset until accuracy is back within ``tolerance`` of before.

    The level before an onset is the mean of up to three ticks before it. A shift
    that never dips below that level minus ``tolerance`` recovers in 0 s. One that
    has not recovered by the horizon counts the time to the horizon (a lower
    bound) and is counted in the second return value.
    """
    times, censored = [], 0
    series = [(float(r["time_s"]), float(r["acc_mean"])) for r in evals]
    for onset in sorted(set(onsets)):
        before = [acc for t, acc in series if t < onset][-3:]
        after = [(t, acc) for t, acc in series if t >= onset]
        if not before or not after:
            continue
        floor = float(np.mean(before)) - tolerance
        dip = next((i for i, (_, acc) in enumerate(after) if acc < floor), None)
        if dip is None:
            times.append(0.0)
            continue
        back = next((t for t, acc in after[dip:] if acc >= floor), None)
        if back is None:
            censored += 1
            times.append(horizon_s - onset)
        else:
            times.append(back - onset)
    return times, censored


def summarize_file(
    path: Path,
    method: str,
    seed: int,
    devices: int,
    onsets: list[float],
    horizon_s: float,
    tolerance: float,
) -> dict[str, Any]:
    """One summary row from one method-seed metrics file."""
    rows = read_rows(path)
    rounds = [r for r in rows if r["kind"] == "round"]
    # a tick at which no device answered measured nothing (acc_mean is null)
    evals = [r for r in rows if r["kind"] == "eval" and r.get("acc_mean") is not None]
    end = next((r for r in rows if r["kind"] == "end"), None)
    replied = sum(r["replied"] for r in rounds)
    recovery, censored = recovery_times(evals, onsets, horizon_s, tolerance)
    first_onset = min(onsets) if onsets else None
    post = [e["acc_mean"] for e in evals if first_onset is not None and e["time_s"] >= first_onset]
    last_round_end = max((r["start_s"] + r["duration_s"] for r in rounds), default=0.0)
    return {
        "method": method,
        "seed": seed,
        "acc_mean": _mean([e["acc_mean"] for e in evals]),
        "acc_worst10": worst_fraction_mean(evals),
        "recovery_s": _mean(recovery) if recovery else 0.0,
        "bytes_up_per_device": sum(r["bytes_up"] for r in rounds) / devices,
        "bytes_down_per_device": sum(r["bytes_down"] for r in rounds) / devices,
        "device_flops_per_round": sum(r["flops"] for r in rounds) / replied if replied else 0.0,
        "device_backward_passes": sum(r["backward_passes"] for r in rounds),
        "rounds": len(rounds),
        "dropped_device_rounds": sum(r["late"] + r["failed"] for r in rounds),
        "sim_duration_s": end["sim_duration_s"] if end else last_round_end,
        "wall_s": end["wall_s"] if end else (rounds[-1]["wall_s"] if rounds else 0.0),
        "acc_final": _mean([e["acc_mean"] for e in evals[-3:]]),
        "acc_post_shift": _mean(post) if post else float("nan"),
        "recovery_censored": censored,
        "late_device_rounds": sum(r["late"] for r in rounds),
        "failed_device_rounds": sum(r["failed"] for r in rounds),
        "device_rounds": sum(r["sampled"] for r in rounds),
        "round_duration_mean_s": _mean([r["duration_s"] for r in rounds if r["sampled"]])
        if any(r["sampled"] for r in rounds)
        else 0.0,
        "bytes_per_device_round": (
            sum(r["bytes_up"] + r["bytes_down"] for r in rounds) / replied if replied else 0.0
        ),
        "prototypes_final": next(
            (
                r["train_metrics"]["prototypes"]
                for r in reversed(rounds)
                if "prototypes" in r.get("train_metrics", {})
            ),
            None,
        ),
        "complete": end is not None,
    }


def write_summary(rows: list[dict[str, Any]], folder: Path) -> None:
    """Write ``summary.json`` and ``summary.csv`` (atomically: write, then rename)."""
    json_tmp, csv_tmp = folder / ".summary.json.tmp", folder / ".summary.csv.tmp"
    json_tmp.write_text(json.dumps(rows, indent=2, default=str) + "\n", encoding="utf-8")
    with csv_tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k) for k in SUMMARY_COLUMNS})
    json_tmp.replace(folder / "summary.json")
    csv_tmp.replace(folder / "summary.csv")
