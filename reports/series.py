"""Time series and per-device figures derived from metrics rows (seeds aligned)."""

from __future__ import annotations

from typing import Any

import numpy as np

from reports.statistics import mean_ci95
from simulator.run.interval import seed_interval
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


def paired_band(
    runs: list[MethodRun], reference: list[MethodRun]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tick times (s), the mean over seeds of the per-seed paired difference to
    ``reference`` at each tick, and its t-interval bounds (NaN below two seeds).

    Per seed and tick, the difference is taken on the devices both evaluated,
    as ``paired.csv`` does for whole windows, so the band is the statistics'
    own and not two unpaired bands laid over each other.
    """
    theirs = {run.seed: {float(e["time_s"]): e for e in run.evals} for run in reference}
    per_tick: dict[float, list[float]] = {}
    for run in runs:
        for e in run.evals:
            other = theirs.get(run.seed, {}).get(float(e["time_s"]))
            if other is None:
                continue
            ours = dict(zip(e["devices"], e["accs"], strict=True))
            base = dict(zip(other["devices"], other["accs"], strict=True))
            shared = sorted(set(ours) & set(base))
            if shared:
                difference = float(np.mean([ours[d] - base[d] for d in shared]))
                per_tick.setdefault(float(e["time_s"]), []).append(difference)
    times = sorted(per_tick)
    bands = [seed_interval(per_tick[t])[:3] for t in times]
    mean, low, high = (np.array([b[i] for b in bands]) for i in range(3))
    return np.array(times), mean, low, high


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
