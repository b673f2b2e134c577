"""Accuracy over the evaluation grid: time averages, windows around shifts, recovery.

Pure functions of a run's evaluation rows (one per tick: the devices that
answered and each one's accuracy). The summary and the paired statistics
both read accuracy through here, so a column means the same in both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

TickFilter = Callable[[float], bool]  # which ticks (by simulated time) a figure averages

EvalRow = dict[str, Any]


def answered(rows: list[EvalRow]) -> list[EvalRow]:
    """Evaluation ticks at which at least one device answered (others measured nothing)."""
    return [r for r in rows if r.get("kind") == "eval" and r.get("acc_mean") is not None]


def everywhere(time_s: float) -> bool:
    return True


def before(onsets: list[float]) -> TickFilter:
    """Ticks before the first onset (all of them when nothing shifts)."""
    first = min(onsets, default=math.inf)
    return lambda time_s: time_s < first


def after_each(onsets: list[float], window_s: float) -> TickFilter:
    """Ticks within ``window_s`` after any onset (each tick counted once)."""
    return lambda time_s: any(onset <= time_s < onset + window_s for onset in onsets)


def _scores(row: EvalRow, context: str | None) -> list[tuple[int, float]]:
    """A tick's (device, score) pairs, or only those in a ``known``/``unknown`` context."""
    pairs = zip(row["devices"], row["accs"], strict=True)
    if context is None:
        return [(int(d), float(a)) for d, a in pairs]
    kinds = row.get("contexts") or [None] * len(row["devices"])
    kept = zip(pairs, kinds, strict=True)
    return [(int(d), float(a)) for (d, a), kind in kept if kind == context]


def tick_mean(
    evals: list[EvalRow], keep: TickFilter = everywhere, context: str | None = None
) -> float:
    """Mean over the kept ticks of the fleet accuracy at each tick (NaN if none).

    With ``context`` (``known`` or ``unknown``), a tick's accuracy is the mean
    over its devices in that kind of context, and ticks with none are skipped.
    """
    values = []
    for e in evals:
        if not keep(float(e["time_s"])):
            continue
        if context is None:
            values.append(float(e["acc_mean"]))
        elif scores := _scores(e, context):
            values.append(float(np.mean([acc for _, acc in scores])))
    return float(np.mean(values)) if values else math.nan


def device_means(
    evals: list[EvalRow], keep: TickFilter = everywhere, context: str | None = None
) -> dict[int, float]:
    """Each evaluated device's accuracy averaged over the kept ticks it answered
    (with ``context``: only the ticks at which it was in that kind of context)."""
    per_device: dict[int, list[float]] = {}
    for row in evals:
        if keep(float(row["time_s"])):
            for device, acc in _scores(row, context):
                per_device.setdefault(device, []).append(acc)
    return {device: float(np.mean(values)) for device, values in per_device.items()}


def worst_share_mean(values: list[float], share: float = 0.1) -> float:
    """Mean of the lowest ``share`` of ``values`` (at least one; NaN if empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return float(np.mean(ordered[: max(1, math.ceil(share * len(ordered)))]))


def recovery_times(
    evals: list[EvalRow], onsets: list[float], horizon_s: float, tolerance: float
) -> tuple[list[float], int]:
    """Seconds from each onset until accuracy is back within ``tolerance`` of before it.

    The level before an onset is the method's own: the mean of up to three
    ticks before it (after the previous onset). The search runs until the next
    onset (or the horizon); a shift that never dips below the level minus
    ``tolerance`` recovers in 0 s. One still below when the search ends counts
    the time to that end (a lower bound) and is counted in the second return
    value. An onset with no tick before or after it is not measurable and
    gives no figure.
    """
    times, censored = [], 0
    series = [(float(r["time_s"]), float(r["acc_mean"])) for r in evals]
    ordered = sorted(set(onsets))
    for i, onset in enumerate(ordered):
        previous = ordered[i - 1] if i else -math.inf
        end = ordered[i + 1] if i + 1 < len(ordered) else horizon_s
        level = [acc for t, acc in series if previous <= t < onset][-3:]
        after = [(t, acc) for t, acc in series if onset <= t < end]
        if not level or not after:
            continue
        floor = float(np.mean(level)) - tolerance
        dip = next((j for j, (_, acc) in enumerate(after) if acc < floor), None)
        if dip is None:
            times.append(0.0)
            continue
        back = next((t for t, acc in after[dip:] if acc >= floor), None)
        if back is None:
            censored += 1
            times.append(end - onset)
        else:
            times.append(back - onset)
    return times, censored
