"""Paired comparisons: how much one method beats another, with a 95% interval.

Within a seed every method meets the same fleet, the same drift and the same
evaluated devices with the same samples, so methods are compared pairwise:
for each seed, a statistic (mean accuracy, post-shift accuracy, the mean of
the worst 10% of devices) is computed for both methods on the same devices,
and the difference is averaged over seeds. The interval comes from a
bootstrap that resamples seeds, then devices within each drawn seed, and
recomputes the difference each time (2,000 draws, percentile interval).
Only an interval that excludes 0 supports a claim that one method leads.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from simulator.run.accuracy import EvalRow, TickFilter, after_each, device_means, everywhere
from simulator.run.reader import PAIRED_FILE
from simulator.world.seeding import rng_for

DRAWS = 2000

Statistic = Callable[[np.ndarray], np.ndarray]  # rows of per-device values -> a figure per row


def _mean(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=1)


def _worst10(values: np.ndarray) -> np.ndarray:
    count = max(1, math.ceil(0.1 * values.shape[1]))
    return np.sort(values, axis=1)[:, :count].mean(axis=1)


@dataclass(frozen=True)
class Metric:
    """A paired figure: which ticks it averages, and how devices combine."""

    name: str
    ticks: Callable[[list[float], float], TickFilter]
    combine: Statistic


METRICS = (
    Metric("acc_mean", lambda onsets, window: everywhere, _mean),
    Metric("acc_post_shift", after_each, _mean),
    Metric("acc_worst10", lambda onsets, window: everywhere, _worst10),
)


@dataclass(frozen=True)
class Comparison:
    """``method`` minus ``reference`` on ``metric``: the mean over seeds and its interval."""

    metric: str
    method: str
    reference: str
    seeds: int
    devices: int
    difference: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        """``lead``, ``behind`` or ``no detectable difference`` (the interval decides)."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return "no detectable difference"
        if self.low > 0:
            return "lead"
        if self.high < 0:
            return "behind"
        return "no detectable difference"


def _paired_values(
    method: dict[int, list[EvalRow]], reference: dict[int, list[EvalRow]], ticks: TickFilter
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per seed: both methods' per-device values on the devices both have."""
    pairs = []
    for seed in sorted(set(method) & set(reference)):
        ours, theirs = device_means(method[seed], ticks), device_means(reference[seed], ticks)
        shared = sorted(set(ours) & set(theirs))
        if shared:
            pairs.append(
                (np.array([ours[d] for d in shared]), np.array([theirs[d] for d in shared]))
            )
    return pairs


def compare(
    method: dict[int, list[EvalRow]],
    reference: dict[int, list[EvalRow]],
    metric: Metric,
    onsets: list[float],
    window_s: float,
    names: tuple[str, str],
) -> Comparison:
    """The paired difference of ``metric`` between two methods' evaluation rows (by seed)."""
    pairs = _paired_values(method, reference, metric.ticks(onsets, window_s))
    devices = sum(len(a) for a, _ in pairs)
    if not pairs:
        return Comparison(metric.name, *names, 0, 0, math.nan, math.nan, math.nan)

    observed = float(
        np.mean([metric.combine(a[None])[0] - metric.combine(b[None])[0] for a, b in pairs])
    )
    rng = rng_for(0, "paired-bootstrap", metric.name, *names)
    seeds = len(pairs)
    # For each seed, one device resample per (draw, slot): the difference of the statistic.
    banks = []
    for a, b in pairs:
        picked = rng.integers(0, len(a), size=(DRAWS * seeds, len(a)))
        banks.append((metric.combine(a[picked]) - metric.combine(b[picked])).reshape(DRAWS, seeds))
    drawn = rng.integers(0, seeds, size=(DRAWS, seeds))  # which seed fills each slot
    bank = np.stack(banks)  # (seeds, DRAWS, slots)
    draws = bank[drawn, np.arange(DRAWS)[:, None], np.arange(seeds)[None, :]].mean(axis=1)
    low, high = np.percentile(draws, [2.5, 97.5])
    return Comparison(metric.name, *names, seeds, devices, observed, float(low), float(high))


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
            if method == reference:
                continue
            for metric in METRICS:
                if metric.name == "acc_post_shift" and not onsets:
                    continue
                rows.append(
                    compare(
                        evals[method],
                        evals[reference],
                        metric,
                        onsets,
                        window_s,
                        (method, reference),
                    )
                )
    return rows


def write_paired(rows: list[Comparison], folder: Path) -> None:
    """``paired.csv``: one row per metric, method and reference (written atomically)."""
    fields = [*asdict(rows[0]).keys(), "verdict"] if rows else ["metric"]
    tmp = folder / f".{PAIRED_FILE}.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({**asdict(row), "verdict": row.verdict})
    tmp.replace(folder / PAIRED_FILE)


def references(methods: list[str]) -> list[str]:
    """What every method is compared with: ``static``, the first baseline, full Persona.

    The first baseline is the first method that is neither ``static`` nor a
    Persona variant. Full ``persona`` is a reference when one of its ablations
    runs beside it, so each ablation's cost or gain has its own interval.
    """
    chosen = ["static"] if "static" in methods else []
    baseline = next((m for m in methods if m != "static" and not m.startswith("persona")), None)
    if baseline is not None:
        chosen.append(baseline)
    if "persona" in methods and any(m.startswith("persona-") for m in methods):
        chosen.append("persona")
    return chosen
