"""Paired comparisons: how much one method beats another, with a 95% interval.

Within a seed every method meets the same fleet, the same drift and the same
evaluated devices with the same samples, so methods are compared pairwise:
for each seed, a statistic (mean accuracy, post-shift accuracy, in known and
in unknown contexts, the mean of the worst 10% of devices) is computed for
both methods on the same devices, and their difference is that seed's result.

The seed is the unit of replication: devices within a seed share one
pretrained model, one fleet draw and one drift, so they are not independent
draws of a method's merit. The interval is therefore a Student t interval
on the per-seed differences (``n - 1`` degrees of freedom). A bootstrap
over seeds and then devices, used before, was far too narrow at the seed
counts tables use (two seeds give a bootstrap three distinct outcomes);
``tests/test_accuracy_stats.py`` measures both rules' false verdicts. Below
``MIN_SEEDS`` seeds no verdict is given ("too few seeds"); one seed gives no
interval at all. Only an interval that excludes 0 supports a claim that one
method leads.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from basemodel.atomic import atomic_path
from simulator.run.accuracy import EvalRow, TickFilter, after_each, device_means, everywhere
from simulator.run.interval import MIN_SEEDS, TOO_FEW, seed_interval
from simulator.run.reader import PAIRED_FILE
from simulator.world.known import KNOWN, UNKNOWN

Statistic = Callable[[np.ndarray], float]  # per-device values -> a figure


def _mean(values: np.ndarray) -> float:
    return float(values.mean())


def _worst10(values: np.ndarray) -> float:
    count = max(1, math.ceil(0.1 * len(values)))
    return float(np.sort(values)[:count].mean())


@dataclass(frozen=True)
class Metric:
    """A paired figure: which ticks it averages, which devices' contexts, how devices combine.

    ``context`` keeps only device-ticks in a ``known`` or ``unknown`` context
    (None: all of them); ``after_shift`` marks the figures that need an onset.
    """

    name: str
    ticks: Callable[[list[float], float], TickFilter]
    combine: Statistic
    context: str | None = None
    after_shift: bool = False


METRICS = (
    Metric("acc_mean", lambda onsets, window: everywhere, _mean),
    Metric("acc_post_shift", after_each, _mean, after_shift=True),
    Metric("acc_post_known", after_each, _mean, KNOWN, after_shift=True),
    Metric("acc_post_unknown", after_each, _mean, UNKNOWN, after_shift=True),
    Metric("acc_worst10", lambda onsets, window: everywhere, _worst10),
)


@dataclass(frozen=True)
class Comparison:
    """``method`` minus ``reference`` on ``metric``: the mean over seeds and its interval.

    ``seed_sd`` is the standard deviation of the per-seed differences (NaN
    with one seed); ``low``/``high`` the t interval (NaN with one seed).
    """

    metric: str
    method: str
    reference: str
    seeds: int
    devices: int
    difference: float
    low: float
    high: float
    seed_sd: float = math.nan

    @property
    def verdict(self) -> str:
        """``lead``, ``behind``, ``no detectable difference`` or ``too few seeds``."""
        if self.seeds < MIN_SEEDS:
            return TOO_FEW
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return "no detectable difference"
        if self.low > 0:
            return "lead"
        if self.high < 0:
            return "behind"
        return "no detectable difference"


def seed_differences(
    method: dict[int, list[EvalRow]],
    reference: dict[int, list[EvalRow]],
    metric: Metric,
    ticks: TickFilter,
) -> tuple[dict[int, float], int]:
    """Per seed, the statistic's difference on the devices both evaluated; devices paired."""
    differences, devices = {}, 0
    for seed in sorted(set(method) & set(reference)):
        ours = device_means(method[seed], ticks, metric.context)
        theirs = device_means(reference[seed], ticks, metric.context)
        shared = sorted(set(ours) & set(theirs))
        if shared:
            a = np.array([ours[d] for d in shared])
            b = np.array([theirs[d] for d in shared])
            differences[seed] = metric.combine(a) - metric.combine(b)
            devices += len(shared)
    return differences, devices


def compare(
    method: dict[int, list[EvalRow]],
    reference: dict[int, list[EvalRow]],
    metric: Metric,
    onsets: list[float],
    window_s: float,
    names: tuple[str, str],
) -> Comparison:
    """The paired difference of ``metric`` between two methods' evaluation rows (by seed)."""
    differences, devices = seed_differences(
        method, reference, metric, metric.ticks(onsets, window_s)
    )
    if not differences:
        return Comparison(metric.name, *names, 0, 0, math.nan, math.nan, math.nan)
    mean, low, high, sd = seed_interval(list(differences.values()))
    return Comparison(metric.name, *names, len(differences), devices, mean, low, high, sd)


def paired_table(
    evals: dict[str, dict[int, list[EvalRow]]],
    references: list[str],
    onsets: list[float],
    window_s: float,
) -> list[Comparison]:
    """Every method against every reference, on every metric (post-shift only with onsets)."""
    rows = []
    for reference in references:
        for method in evals:
            if method == reference or _already_paired(method, reference, references):
                continue
            for metric in METRICS:
                if metric.after_shift and not onsets:
                    continue
                row = compare(
                    evals[method], evals[reference], metric, onsets, window_s, (method, reference)
                )
                if metric.context is None or row.devices:  # no such context: no row
                    rows.append(row)
    return rows


def _already_paired(method: str, reference: str, references: list[str]) -> bool:
    """Two references meet once: the later one is compared with the earlier, not back."""
    return method in references and references.index(method) < references.index(reference)


def write_paired(rows: list[Comparison], folder: Path) -> None:
    """``paired.csv``: one row per metric, method and reference (written atomically)."""
    fields = [*asdict(rows[0]).keys(), "verdict"] if rows else ["metric"]
    with (
        atomic_path(folder / PAIRED_FILE) as tmp,
        tmp.open("w", newline="", encoding="utf-8") as handle,
    ):
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({**asdict(row), "verdict": row.verdict})


def references(roles: Mapping[str, Mapping[str, str | None]]) -> list[str]:
    """What every method is compared with, from the roles the methods declare.

    In order: the ``reference`` methods (``static``); the first plain method,
    neither a reference, the project's subject nor a variant (the first
    baseline); and each method one of whose variants runs beside it, so each
    ablation's cost or gain has its own interval. ``roles`` maps each method of
    the run, in the run's order, to its declared roles
    (``strategies.base.Method.declared_roles``).
    """
    chosen = [m for m, r in roles.items() if r.get("role") == "reference"]
    baseline = next(
        (m for m, r in roles.items() if r.get("role") == "method" and not r.get("variant_of")),
        None,
    )
    if baseline is not None:
        chosen.append(baseline)
    parents = {r.get("variant_of") for r in roles.values()} - {None}
    chosen += [m for m in roles if m in parents and m not in chosen]
    return chosen
