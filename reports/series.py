"""Time series and per-device figures derived from metrics rows (seeds aligned)."""

from __future__ import annotations

from typing import Any

import numpy as np

from reports.statistics import mean_ci95
from simulator.run.reader import MethodRun


def accuracy_band(runs: list[MethodRun]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tick times (s), mean fleet accuracy over seeds, and the 95% CI half-width."""
    times = sorted({float(e["time_s"]) for run in runs for e in run.evals})
    means, halves = [], []
    for t in times:
        values = [e["acc_mean"] for run in runs for e in run.evals if float(e["time_s"]) == t]
        mean, half = mean_ci95(values)
        means.append(mean)
        halves.append(half)
    return np.array(times), np.array(means), np.array(halves)


def cumulative_bytes_at(run: MethodRun, times: np.ndarray, devices: int) -> np.ndarray:
    """Bytes per device (up + down) moved by rounds that started before each time."""
    starts = np.array([r["start_s"] for r in run.rounds], dtype=float)
    moved = np.cumsum([(r["bytes_up"] + r["bytes_down"]) / devices for r in run.rounds])
    out = []
    for t in times:
        done = np.searchsorted(starts, t, side="right")
        out.append(moved[done - 1] if done > 0 else 0.0)
    return np.array(out)


def per_device_accuracy(runs: list[MethodRun]) -> np.ndarray:
    """Time-averaged accuracy of every evaluated device (pooled over seeds)."""
    values = []
    for run in runs:
        per_device: dict[int, list[float]] = {}
        for e in run.evals:
            for device, acc in zip(e["devices"], e["accs"], strict=True):
                per_device.setdefault(device, []).append(acc)
        values.extend(float(np.mean(v)) for v in per_device.values())
    return np.array(sorted(values))


def prototype_members(run: MethodRun) -> tuple[list[int], dict[str, list[int]], list[int]]:
    """Rounds, devices per prototype id per round, and the number of prototypes."""
    rounds, counts, totals = [], {}, []
    ids = sorted(
        {k for r in run.rounds for k in r.get("train_metrics", {}) if k.startswith("members-")},
        key=lambda k: int(k.split("-")[1]),
    )
    for r in run.rounds:
        metrics: dict[str, Any] = r.get("train_metrics", {})
        if "prototypes" not in metrics:
            continue
        rounds.append(int(r["round"]))
        totals.append(int(metrics["prototypes"]))
        for key in ids:
            counts.setdefault(key, []).append(int(metrics.get(key, 0)))
    return rounds, counts, totals
